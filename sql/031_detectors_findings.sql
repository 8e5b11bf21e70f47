-- Finding detectors (docs/detectors.md): failed_debit, consecutive_failures, duplicate_scan,
-- concurrent_txn. Pure functions of (params, since) over the source views; `since` is the earliest
-- row time to examine (the runner's watermark minus late_window, or first_lookback on a first run).

-- A failed transaction that still took money, on the best evidence the mapping gives
-- (monitor.failed_debit_evidence, docs/mapping.md): its balances (balance_after < balance_before),
-- a `posted` mark (the money moved), or else its account's balance: a failed debit, not seen by the
-- previous run and not reported before, whose amount is exactly what its account's balance lacks
-- against its history (its opening balance and successful amounts, read once per account), when it
-- is the only such failed debit of that amount on the account and the account has no failed_debit
-- event open (one that already explains the difference). One finding per transaction: a transfer is
-- judged on its debit leg.
--
-- "Not reported before" keeps the balance evidence the same where rows carry no xmin (a view, a
-- distributed ledger: every row of the late window then looks new): a failed debit already reported
-- does not make a later one of the same amount look ambiguous. The balance is read by one query over
-- the accounts, joined on account_id (on Citus each shard reads its own accounts), not by calling a
-- function per account.
CREATE OR REPLACE FUNCTION monitor.detect_failed_debit(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH failed AS MATERIALIZED (  -- the failed rows of the window first
        SELECT t.*, (age(t.row_xmin) <= $5) IS NOT FALSE AS fresh
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND t.status = 'failed' AND t.is_primary
    ), candidates AS MATERIALIZED (  -- the balance evidence: new failed debits, how many of each amount
        SELECT f.txn_id, f.account_id, count(*) OVER (PARTITION BY f.account_id, f.amount) AS same_amount
          FROM failed f
         WHERE $4 = 'difference' AND f.fresh AND f.amount < 0
           AND NOT EXISTS (SELECT FROM monitor.events e
                            WHERE e.detector = 'failed_debit' AND e.dedup_key = f.txn_id)
           AND NOT EXISTS (SELECT FROM monitor.events e
                            WHERE e.detector = 'failed_debit' AND e.subject = f.account_id
                              AND e.status <> 'resolved')
    ), differences AS MATERIALIZED (  -- each candidate's account once, and only when needed
        SELECT a.account_id, a.balance - a.opening_balance - coalesce(s.total, 0) AS diff
          FROM monitor.src_accounts a
          LEFT JOIN LATERAL (SELECT sum(t.amount) AS total FROM monitor.src_transactions t
                              WHERE t.account_id = a.account_id AND t.status = 'success') s ON true
         WHERE a.account_id = ANY (ARRAY(SELECT DISTINCT c.account_id FROM candidates c))
    ), judged AS (
        SELECT f.*,
               CASE $4 WHEN 'balances' THEN f.balance_before - f.balance_after
                       WHEN 'posted' THEN CASE WHEN f.posted AND f.amount < 0 THEN -f.amount END
                       ELSE CASE WHEN c.same_amount = 1 AND d.diff = f.amount THEN -f.amount END END AS lost
          FROM failed f
          LEFT JOIN candidates c ON c.txn_id = f.txn_id AND c.account_id = f.account_id
          LEFT JOIN differences d ON d.account_id = f.account_id
    )
    SELECT t.account_id,
           t.txn_id,
           t.txn_id,
           t.lost,
           CASE $4 WHEN 'balances'
                THEN format('failed transaction %s on %s still took %s (balance %s -> %s)', t.txn_id, t.account_id,
                            t.lost, t.balance_before, t.balance_after)
                WHEN 'posted'
                THEN format('failed transaction %s on %s still took %s (it was posted)', t.txn_id, t.account_id, t.lost)
                ELSE format('failed transaction %s on %s still took %s (the balance lacks exactly its amount)',
                            t.txn_id, t.account_id, t.lost) END,
           jsonb_build_object(
               'txn_id', t.txn_id, 'account_id', t.account_id, 'status', t.status, 'amount', t.amount,
               'balance_before', t.balance_before, 'balance_after', t.balance_after,
               'lost', t.lost, 'device_id', t.device_id, 'evidence', $4,
               'created_at', t.created_at, 'updated_at', t.updated_at)
      FROM judged t
     WHERE t.lost > 0
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity'), monitor.failed_debit_evidence(),
              monitor.seen_age(params);
END
$$;
COMMENT ON FUNCTION monitor.detect_failed_debit(jsonb, timestamptz) IS
    'failed_debit: a failed transaction that still took money (its balances, its posted mark, or its account''s balance).';

-- A maximal run of consecutive failed transactions of one account (pending ones skipped) holding
-- `count` failures within `window` of each other, first to last.
CREATE OR REPLACE FUNCTION monitor.detect_consecutive_failures(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH fresh AS (                -- accounts with new or changed failures, and their earliest one:
        SELECT t.account_id, min(t.created_at) AS t0  -- a run that holds a fresh row holds a fresh failure
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND t.status = 'failed' AND t.is_primary
         GROUP BY t.account_id
    ), start AS (                  -- a run starts after the last success before that row, found
        SELECT f.account_id, p.t   -- backwards through (account_id, created_at); a lateral join rather
          FROM fresh f             -- than a scalar subquery, so that Citus runs it on each account's shard
          LEFT JOIN LATERAL (
              SELECT s.created_at AS t FROM monitor.src_transactions s
               WHERE s.account_id = f.account_id AND s.created_at < f.t0 AND s.status = 'success'
                 AND s.is_primary ORDER BY s.created_at DESC LIMIT 1) p ON true
    ), seq AS (                    -- each account's rows from there, read through (account_id, created_at)
        SELECT r.account_id, r.txn_id, r.created_at, r.status, r.amount, r.device_id,
               ((r.created_at >= $2 AND r.created_at < $3) OR (r.updated_at >= $2 AND r.updated_at < $3)) AS is_new,
               count(*) FILTER (WHERE r.status = 'success')
                   OVER (PARTITION BY r.account_id ORDER BY r.created_at, r.txn_id COLLATE "C") AS run
          FROM start s
          CROSS JOIN LATERAL (
              SELECT t.* FROM monitor.src_transactions t  -- OFFSET 0: a lookup per account, never a hash join
               WHERE t.account_id = s.account_id AND t.created_at >= coalesce(s.t, '-infinity')  -- of the view
                 AND t.created_at < $3 AND t.status IN ('success', 'failed') AND t.is_primary OFFSET 0) r
    ), runs AS (
        SELECT q.account_id,
               array_agg(q.txn_id ORDER BY q.created_at, q.txn_id COLLATE "C") AS ids,
               array_agg(q.created_at ORDER BY q.created_at, q.txn_id COLLATE "C") AS times,
               jsonb_agg(jsonb_build_object('txn_id', q.txn_id, 'created_at', q.created_at, 'amount', q.amount,
                                            'device_id', q.device_id)
                         ORDER BY q.created_at, q.txn_id COLLATE "C") AS rows,
               bool_or(q.is_new) AS any_new
          FROM seq q
         WHERE q.status = 'failed'
         GROUP BY q.account_id, q.run
    ), hits AS (
        SELECT r.*, ($1 ->> 'count')::integer AS n, ($1 ->> 'window')::interval AS w
          FROM runs r
         WHERE r.any_new
    )
    SELECT h.account_id,
           h.ids[1],
           h.ids[1],
           NULL::numeric,
           format('%s consecutive failed transactions on %s from %s to %s', cardinality(h.ids), h.account_id,
                  h.times[1], h.times[cardinality(h.times)]),
           jsonb_build_object(
               'account_id', h.account_id, 'failures', cardinality(h.ids),
               'first_txn_id', h.ids[1], 'first_at', h.times[1], 'last_at', h.times[cardinality(h.times)],
               'transactions', h.rows, 'member_keys', to_jsonb(h.ids),
               'count', h.n, 'window', h.w::text)
      FROM hits h
     WHERE cardinality(h.ids) >= h.n
       AND EXISTS (SELECT FROM generate_series(1, cardinality(h.ids) - h.n + 1) i
                    WHERE h.times[i + h.n - 1] - h.times[i] <= h.w)
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$$;
COMMENT ON FUNCTION monitor.detect_consecutive_failures(jsonb, timestamptz) IS
    'consecutive_failures: a maximal run of failed transactions holding `count` within `window`.';

-- A card scanned in a burst: each scan within `window` of the previous one, at least `min_count`.
CREATE OR REPLACE FUNCTION monitor.detect_duplicate_scan(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT b.account_id,
           b.ids[1],
           NULL::text,
           NULL::numeric,
           format('card %s scanned %s times in %s (from %s)', b.account_id, cardinality(b.ids),
                  b.times[cardinality(b.times)] - b.times[1], b.times[1]),
           jsonb_build_object(
               'account_id', b.account_id, 'scans', cardinality(b.ids), 'first_scan_id', b.ids[1],
               'first_at', b.times[1], 'last_at', b.times[cardinality(b.times)],
               'scan_ids', to_jsonb(b.ids[1:50]), 'times', to_jsonb(b.times[1:50]),
               'devices', to_jsonb(b.devices[1:50]), 'member_keys', to_jsonb(b.ids),
               'window', $1 ->> 'window', 'min_count', ($1 -> 'min_count'))
      FROM monitor.find_bursts('scans', ($1 ->> 'window')::interval,
                               ($1 ->> 'min_count')::integer, $2, $3, monitor.seen_age($1),
                               ARRAY(SELECT jsonb_array_elements_text(coalesce($1 -> 'exclude', '[]'))) ) b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$$;
COMMENT ON FUNCTION monitor.detect_duplicate_scan(jsonb, timestamptz) IS
    'duplicate_scan: a maximal burst of scans of one card, each within `window` of the previous.';

-- Transactions of one account in a burst (any status), each within `window` of the previous one: by
-- default only its debits (`debits_only`: the paying side; a merchant receiving two payments at once
-- is no anomaly, and a double payment is reported once, on its payer).
CREATE OR REPLACE FUNCTION monitor.detect_concurrent_txn(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT b.account_id,
           b.ids[1],
           b.ids[1],
           (SELECT sum(a) FROM unnest(b.amounts) a),
           format('%s transactions on %s within %s (from %s), total %s', cardinality(b.ids), b.account_id,
                  b.times[cardinality(b.times)] - b.times[1], b.times[1], (SELECT sum(a) FROM unnest(b.amounts) a)),
           jsonb_build_object(
               'account_id', b.account_id, 'transactions', cardinality(b.ids), 'first_txn_id', b.ids[1],
               'first_at', b.times[1], 'last_at', b.times[cardinality(b.times)],
               'txn_ids', to_jsonb(b.ids[1:50]), 'times', to_jsonb(b.times[1:50]),
               'amounts', to_jsonb(b.amounts[1:50]), 'statuses', to_jsonb(b.statuses[1:50]),
               'devices', to_jsonb(b.devices[1:50]), 'member_keys', to_jsonb(b.ids),
               'window', $1 ->> 'window', 'min_count', ($1 -> 'min_count'))
      FROM monitor.find_bursts(CASE WHEN ($1 ->> 'debits_only')::boolean IS FALSE THEN 'transactions' ELSE 'debits' END,
                               ($1 ->> 'window')::interval,
                               ($1 ->> 'min_count')::integer, $2, $3, monitor.seen_age($1),
                               ARRAY(SELECT jsonb_array_elements_text(coalesce($1 -> 'exclude', '[]'))) ) b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$$;
COMMENT ON FUNCTION monitor.detect_concurrent_txn(jsonb, timestamptz) IS
    'concurrent_txn: a maximal burst of one account''s transactions, each within `window` of the previous.';
