-- balance_chain (docs/detectors.md): the running-balance chain of a ledger that records the balance
-- around each movement. Two promises hold on every account, in the order of its rows (created_at,
-- then the mapped `sequence`, then txn_id):
--   the sum:  a successful row's balance_after = balance_before + amount;
--   the link: a row's balance_before = the previous row's balance_after.
-- A failed row moves nothing and is not summed (failed_debit judges it), but it is a link: the row
-- after it starts from its balance_after. Rows without both balances are not part of the chain.
--
-- Incremental like the other finding detectors: the accounts with rows not seen before read their
-- rows from the earliest such row on, with the one row before it as the first link's other end, and
-- every break among the rows read that no event of this detector names yet is reported, both rows
-- as evidence (key: the row that breaks it). The rows after a break follow it as written, so a break
-- is one finding, not one per later row.
--
-- Whether a break was reported is asked of monitor.events, not of row_xmin: the rows read from the
-- earliest new row on include older ones (a row changed late starts the read before breaks already
-- reported), and where row_xmin is unknown (a source mapped onto a view, a distributed ledger) every
-- row of the late window looks new. So the breaks reported are the same however often a row is read:
-- on one server and on a cluster, in a run and in a rescan.
CREATE OR REPLACE FUNCTION monitor.detect_balance_chain(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH fresh AS (
        SELECT t.account_id, min(t.created_at) AS t0
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND (age(t.row_xmin) <= $4) IS NOT FALSE
           AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL
         GROUP BY t.account_id
    ), chain AS (
        SELECT r.*, f.t0,
               lag(r.txn_id) OVER w AS prev_id, lag(r.balance_after) OVER w AS prev_after,
               lag(r.balance_before) OVER w AS prev_before, lag(r.amount) OVER w AS prev_amount,
               lag(r.created_at) OVER w AS prev_at, lag(r.status) OVER w AS prev_status
          FROM fresh f
         CROSS JOIN LATERAL (
               (SELECT t.txn_id, t.account_id, t.amount, t.status, t.balance_before, t.balance_after,
                       t.created_at, t.sequence, false AS read_on
                  FROM monitor.src_transactions t
                 WHERE t.account_id = f.account_id AND t.created_at < f.t0
                   AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL
                 ORDER BY t.created_at DESC, t.sequence DESC NULLS FIRST, t.txn_id COLLATE "C" DESC
                 LIMIT 1)
               UNION ALL
               SELECT t.txn_id, t.account_id, t.amount, t.status, t.balance_before, t.balance_after,
                      t.created_at, t.sequence, true
                 FROM monitor.src_transactions t
                WHERE t.account_id = f.account_id AND t.created_at >= f.t0 AND t.created_at < $3
                  AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL OFFSET 0) r
        WINDOW w AS (PARTITION BY r.account_id ORDER BY r.created_at, r.sequence NULLS LAST, r.txn_id COLLATE "C")
    ), breaks AS MATERIALIZED (
        -- every break among the rows read (the row before the earliest new one is only a link's
        -- other end): one query over the source, run where the account's rows are
        SELECT c.*,
               CASE WHEN c.prev_id IS NOT NULL AND c.balance_before <> c.prev_after THEN 'link' ELSE 'sum' END AS kind
          FROM chain c
         WHERE c.read_on
           AND ((c.prev_id IS NOT NULL AND c.balance_before <> c.prev_after)
                OR (c.status = 'success' AND c.balance_after <> c.balance_before + c.amount))
    ), broken AS (
        -- every break that no event names yet (resolved ones included: a finding is recorded once),
        -- each looked up by its key: what is reported does not depend on how often a row is read
        SELECT b.*
          FROM breaks b
          LEFT JOIN LATERAL (SELECT true AS recorded FROM monitor.events e
                              WHERE e.detector = 'balance_chain' AND e.dedup_key = b.txn_id LIMIT 1) e ON true
         WHERE e.recorded IS NULL
    )
    SELECT b.account_id,
           b.txn_id,
           b.txn_id,
           CASE b.kind WHEN 'link' THEN b.balance_before - b.prev_after
                       ELSE b.balance_after - (b.balance_before + b.amount) END,
           CASE b.kind
                WHEN 'link' THEN format('balance chain of %s broken at %s: it starts from %s, but %s before it ended at %s',
                                        b.account_id, b.txn_id, b.balance_before, b.prev_id, b.prev_after)
                ELSE format('balance chain of %s broken at %s: %s + %s makes %s, not %s', b.account_id, b.txn_id,
                            b.balance_before, b.amount, b.balance_before + b.amount, b.balance_after) END,
           jsonb_build_object(
               'account_id', b.account_id, 'broken', b.kind,
               'entry', jsonb_build_object('txn_id', b.txn_id, 'amount', b.amount, 'status', b.status,
                                           'balance_before', b.balance_before, 'balance_after', b.balance_after,
                                           'created_at', b.created_at),
               'previous', CASE WHEN b.prev_id IS NOT NULL THEN
                           jsonb_build_object('txn_id', b.prev_id, 'amount', b.prev_amount, 'status', b.prev_status,
                                              'balance_before', b.prev_before, 'balance_after', b.prev_after,
                                              'created_at', b.prev_at) END)
      FROM broken b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity'), monitor.seen_age(params);
END
$$;
COMMENT ON FUNCTION monitor.detect_balance_chain(jsonb, timestamptz) IS
    'balance_chain: the first row of an account whose balances do not add up or do not follow the previous row''s.';
