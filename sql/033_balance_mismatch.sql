-- balance_mismatch (docs/detectors.md): |balance - (opening_balance + sum of success amounts)| > tolerance.
--
-- Incremental reconciliation. monitor.account_totals holds, per account, the sum of `success`
-- amounts created before a horizon (watermark 'balance_mismatch.horizon', kept 5 minutes behind
-- the clock so late commits land in the live part). Each run:
--   1. prepare_balance_mismatch adds the rows between the old and the new horizon, recomputes the
--      accounts whose older rows changed (updated_at), and on a full pass (a run without `seen`:
--      the first, a rescan, and one every `full_pass`, monitor.run_detector) recomputes all totals
--      in one hash aggregate and rewrites those that drifted;
--   2. detect_balance_mismatch checks only the accounts that may have changed since the run that
--      `seen` names (new or changed transactions, accounts.updated_at, open events), or every account
--      on a full pass: expected = opening_balance + total before the horizon + live success amounts
--      after it.

CREATE OR REPLACE FUNCTION monitor.balance_horizon_lag() RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$ SELECT interval '5 minutes' $$;

CREATE OR REPLACE FUNCTION monitor.prepare_balance_mismatch(params jsonb, since timestamptz)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    old_h timestamptz;
    new_h timestamptz := now() - monitor.balance_horizon_lag();
BEGIN
    SELECT high_water INTO old_h FROM monitor.watermarks WHERE detector = 'balance_mismatch.horizon';
    -- EXECUTE: a one-shot plan that sees the actual time range (statements below read the source)
    IF NOT params ? 'seen' OR old_h IS NULL
       OR NOT EXISTS (SELECT FROM monitor.account_totals) THEN  -- empty: a crash emptied the unlogged cache
        -- full pass: recompute every total in one sequential pass with an in-memory hash aggregate
        -- (not in (account_id, created_at) index order, which visits the heap at random), and write
        -- only the totals that differ from the stored ones. The sums are a query of their own
        -- (MATERIALIZED): on a distributed ledger the shards compute them, and only the per-account
        -- results meet the totals, which stay on the coordinator.
        PERFORM set_config('work_mem', '256MB', true);
        EXECUTE 'WITH fresh AS MATERIALIZED (
                     SELECT t.account_id, sum(t.amount) AS success_sum FROM monitor.src_transactions t
                      WHERE t.status = ''success'' AND t.created_at < $1
                      GROUP BY t.account_id
                 ), drift AS MATERIALIZED (
                     SELECT coalesce(f.account_id, o.account_id) AS account_id, f.success_sum
                       FROM fresh f FULL JOIN monitor.account_totals o ON o.account_id = f.account_id
                      WHERE f.success_sum IS DISTINCT FROM o.success_sum
                 ), gone AS (
                     DELETE FROM monitor.account_totals a USING drift d
                      WHERE a.account_id = d.account_id AND d.success_sum IS NULL
                 )
                 INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                 SELECT d.account_id, d.success_sum FROM drift d WHERE d.success_sum IS NOT NULL
                 ON CONFLICT (account_id) DO UPDATE SET success_sum = excluded.success_sum' USING new_h;
    ELSE
        IF new_h > old_h THEN
            EXECUTE 'INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                     SELECT t.account_id, sum(t.amount) FROM monitor.src_transactions t
                      WHERE t.status = ''success'' AND t.created_at >= $1 AND t.created_at < $2
                      GROUP BY t.account_id
                     ON CONFLICT (account_id) DO UPDATE SET success_sum = a.success_sum + excluded.success_sum'
                USING old_h, new_h;
        ELSE
            new_h := old_h;
        END IF;
        -- rows created before the old horizon and changed since (pending -> success, say): recount
        -- those accounts from their rows. One query over the source alone, joined on account_id, so
        -- that on a distributed ledger each shard recounts its own accounts; its few rows are then
        -- written here.
        EXECUTE 'INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                 SELECT c.account_id, coalesce(s.success_sum, 0)
                   FROM (SELECT DISTINCT t.account_id FROM monitor.src_transactions t
                          WHERE t.updated_at >= $1 AND t.created_at < $2) c
                   LEFT JOIN LATERAL (SELECT t.account_id, sum(t.amount) AS success_sum
                                        FROM monitor.src_transactions t
                                       WHERE t.account_id = c.account_id AND t.status = ''success''
                                         AND t.created_at < $3
                                       GROUP BY t.account_id) s ON true
                 ON CONFLICT (account_id) DO UPDATE SET success_sum = excluded.success_sum'
            USING since - monitor.balance_horizon_lag(), old_h, new_h;
    END IF;
    INSERT INTO monitor.watermarks AS w (detector, high_water) VALUES ('balance_mismatch.horizon', new_h)
    ON CONFLICT (detector) DO UPDATE SET high_water = excluded.high_water, updated_at = now();
END
$$;
COMMENT ON FUNCTION monitor.prepare_balance_mismatch(jsonb, timestamptz) IS
    'Bring monitor.account_totals up to date before balance_mismatch runs (a full rebuild without `seen`).';

CREATE OR REPLACE FUNCTION monitor.detect_balance_mismatch(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    h timestamptz := coalesce((SELECT high_water FROM monitor.watermarks
                                WHERE detector = 'balance_mismatch.horizon'), '-infinity');
    full_pass boolean := NOT params ? 'seen';
    tolerance numeric := (params ->> 'tolerance')::numeric;
    -- without accounts.updated_at a balance change shows only through a transaction: the accounts
    -- with a transaction after the horizon (the live rows, read anyway) are checked at every run, so
    -- a balance that moves up to balance_horizon_lag() after its transaction is still caught
    recheck_live boolean := NOT monitor.accounts_have_updated_at();
    -- The work is split along where the rows live. The reads of the sources (sums grouped by
    -- account_id, lookups by account_id) are queries of their own (MATERIALIZED) that join source
    -- rows with source rows on account_id only: on a distributed ledger (docs/scaling.md) each runs
    -- on the shards that hold the accounts. monitor's own tables (account_totals, events), which
    -- stay on the coordinator, are joined there with their results: a few rows per run, every
    -- account on a full pass.
    -- Two CTEs are joined only by a FULL JOIN, which is hashed or merged: with the new rows not yet
    -- in the statistics the planner expects a handful of them, and a nested loop of one CTE over
    -- another would be quadratic. A lookup by key is `= ANY` of an array (an index scan, on every
    -- shard too, where a join with the coordinator's intermediate result would be a hash join over
    -- a sequential scan).
    --
    -- `checked` (account_id, balance, opening_balance, settled, live; one row per account) comes
    -- first. A difference that a failed transaction of the account explains exactly (a rejected
    -- payment whose money moved anyway) names it: the failed rows of the mismatched accounts, read
    -- by key, one row per account, matched on the coordinator.
    report text := $r$,
            mismatched AS MATERIALIZED (
                SELECT c.account_id, c.balance, c.opening_balance, c.settled + c.live AS success_sum,
                       c.balance - (c.opening_balance + c.settled + c.live) AS diff
                  FROM checked c
                 WHERE abs(c.balance - (c.opening_balance + c.settled + c.live)) > $3
            ), failed AS MATERIALIZED (
                SELECT t.account_id, array_agg(t.txn_id ORDER BY t.created_at, t.txn_id) AS ids,
                       array_agg(t.amount ORDER BY t.created_at, t.txn_id) AS amounts
                  FROM monitor.src_transactions t
                 WHERE t.account_id = ANY (ARRAY(SELECT m.account_id FROM mismatched m)) AND t.status = 'failed'
                 GROUP BY t.account_id
            ), explained AS (
                SELECT m.*, nullif(ARRAY(SELECT u.id FROM unnest(f.ids, f.amounts) WITH ORDINALITY u(id, amount, n)
                                          WHERE u.amount = m.diff ORDER BY u.n), '{}') AS ids
                  FROM mismatched m FULL JOIN failed f ON f.account_id = m.account_id  -- (each f has its m)
            )
        SELECT x.account_id, x.account_id, NULL::text, x.diff,
               format('account %s balance %s differs from its history (%s) by %s%s', x.account_id, x.balance,
                      x.opening_balance + x.success_sum, x.diff,
                      CASE WHEN x.ids IS NOT NULL
                           THEN format(': failed transaction %s moved it', array_to_string(x.ids, ', ')) ELSE '' END),
               jsonb_build_object('account_id', x.account_id, 'balance', x.balance,
                                  'opening_balance', x.opening_balance,
                                  'success_sum', x.success_sum,
                                  'expected', x.opening_balance + x.success_sum,
                                  'difference', x.diff, 'explained_by', to_jsonb(x.ids),
                                  'tolerance', $3)
          FROM explained x $r$;
BEGIN
    IF full_pass THEN
        -- every account: one hash join of accounts and the live rows after the horizon (on the
        -- shards), then of its result and the totals
        RETURN QUERY EXECUTE $q$
            WITH live AS (
                SELECT t.account_id, sum(t.amount) AS live FROM monitor.src_transactions t
                 WHERE t.status = 'success' AND t.created_at >= $1 GROUP BY t.account_id
            ), per AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance, coalesce(l.live, 0) AS live
                  FROM monitor.src_accounts a LEFT JOIN live l ON l.account_id = a.account_id
            ), checked AS (
                SELECT p.account_id, p.balance, p.opening_balance, coalesce(tot.success_sum, 0) AS settled, p.live
                  FROM per p LEFT JOIN monitor.account_totals tot ON tot.account_id = p.account_id
            )$q$ || report USING h, since, tolerance;
    ELSE
        -- only the accounts that may have changed since `since` and that the previous run did not
        -- see (params ->> 'seen'): the accounts updated since then, read by a range scan of
        -- updated_at (their new row versions sit together), the accounts with new or changed
        -- transactions (a row committed late, created after the horizon, included: the live rows
        -- are read anyway), and those with an open event. `per` gathers the first two with their
        -- live amounts (after the horizon $1), one row per account (a full join of the updated
        -- accounts and the transactions grouped by account); those with an open event and no row
        -- read join them (their live amount is then 0: every live row is read). Only the few not
        -- updated are then read by key.
        RETURN QUERY EXECUTE $q$
            WITH open AS MATERIALIZED (
                SELECT DISTINCT e.subject AS account_id FROM monitor.events e
                 WHERE e.detector = 'balance_mismatch' AND e.status <> 'resolved'
            ), per AS MATERIALIZED (
                SELECT coalesce(a.account_id, t.account_id) AS account_id, a.balance, a.opening_balance,
                       coalesce(t.live, 0) AS live, a.account_id IS NOT NULL AS moved
                  FROM (SELECT a.account_id, a.balance, a.opening_balance FROM monitor.src_accounts a
                         WHERE a.updated_at >= $2 AND (age(a.row_xmin) <= $4) IS NOT FALSE) a
                  FULL JOIN (
                        SELECT t.account_id,
                               sum(CASE WHEN t.status = 'success' AND t.created_at >= $1 THEN t.amount END) AS live,
                               bool_or(((t.created_at >= least($1, $2) OR t.updated_at >= $2)
                                        AND (age(t.row_xmin) <= $4) IS NOT FALSE)
                                       OR ($5 AND t.created_at >= $1)) AS cand
                          FROM monitor.src_transactions t
                         WHERE t.created_at >= least($1, $2) OR t.updated_at >= $2
                         GROUP BY t.account_id) t ON t.account_id = a.account_id
                 WHERE a.account_id IS NOT NULL OR t.cand OR t.account_id IN (SELECT o.account_id FROM open o)
            ), todo AS MATERIALIZED (
                SELECT coalesce(p.account_id, o.account_id) AS account_id, p.balance, p.opening_balance,
                       coalesce(p.live, 0) AS live, coalesce(p.moved, false) AS moved
                  FROM per p FULL JOIN open o ON o.account_id = p.account_id
            ), looked_up AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance FROM monitor.src_accounts a
                 WHERE a.account_id = ANY (ARRAY(SELECT k.account_id FROM todo k WHERE NOT k.moved))
            ), checked AS MATERIALIZED (
                -- (an account not found has no balance: no difference; MATERIALIZED: the difference
                -- tested by `mismatched` would turn the full join into a left join.) The totals, on the
                -- coordinator, are joined by key through their hash index: a lookup per account, where
                -- `= ANY` of thousands of keys would be rechecked against the whole array at each row
                SELECT x.account_id, x.balance, x.opening_balance, coalesce(tot.success_sum, 0) AS settled, x.live
                  FROM (SELECT k.account_id, k.balance, k.opening_balance, k.live FROM todo k WHERE k.moved
                        UNION ALL
                        SELECT k.account_id, l.balance, l.opening_balance, k.live
                          FROM (SELECT * FROM todo k WHERE NOT k.moved) k
                          FULL JOIN looked_up l ON l.account_id = k.account_id) x
                  LEFT JOIN monitor.account_totals tot ON tot.account_id = x.account_id
            )$q$ || report USING h, since, tolerance, monitor.seen_age(params), recheck_live;
    END IF;
END
$$;
COMMENT ON FUNCTION monitor.detect_balance_mismatch(jsonb, timestamptz) IS
    'balance_mismatch: balance differs from opening_balance + sum of success amounts by more than tolerance.';

-- An account's balance less what its history says it should be (opening balance + its successful
-- amounts), read from its own rows: failed_debit's evidence when the mapping gives no better one.
CREATE OR REPLACE FUNCTION monitor.account_difference(p_account text) RETURNS numeric
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT a.balance - a.opening_balance
           - coalesce((SELECT sum(t.amount) FROM monitor.src_transactions t
                        WHERE t.account_id = p_account AND t.status = 'success'), 0)
      FROM monitor.src_accounts a
     WHERE a.account_id = p_account
$$;
COMMENT ON FUNCTION monitor.account_difference(text) IS
    'balance - (opening_balance + sum of success amounts) of one account, from its rows.';
