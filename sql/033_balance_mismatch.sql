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
        -- only the totals that differ from the stored ones
        PERFORM set_config('work_mem', '256MB', true);
        EXECUTE 'WITH fresh AS (
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
        -- those accounts from their rows
        EXECUTE 'WITH changed AS (
                     SELECT DISTINCT t.account_id FROM monitor.src_transactions t
                      WHERE t.updated_at >= $1 AND t.created_at < $2)
                 INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                 SELECT c.account_id,
                        coalesce((SELECT sum(t.amount) FROM monitor.src_transactions t
                                   WHERE t.account_id = c.account_id AND t.status = ''success''
                                     AND t.created_at < $3), 0)
                   FROM changed c
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
    -- a difference that a failed transaction of the account explains exactly (a rejected payment
    -- whose money moved anyway) names it
    report text := $r$
        SELECT c.account_id, c.account_id, NULL::text, d.diff,
               format('account %s balance %s differs from its history (%s) by %s%s', c.account_id, c.balance,
                      c.opening_balance + c.settled + c.live, d.diff,
                      CASE WHEN x.ids IS NOT NULL
                           THEN format(': failed transaction %s moved it', array_to_string(x.ids, ', ')) ELSE '' END),
               jsonb_build_object('account_id', c.account_id, 'balance', c.balance,
                                  'opening_balance', c.opening_balance,
                                  'success_sum', c.settled + c.live,
                                  'expected', c.opening_balance + c.settled + c.live,
                                  'difference', d.diff, 'explained_by', to_jsonb(x.ids),
                                  'tolerance', $3)
          FROM checked c
         CROSS JOIN LATERAL (SELECT c.balance - (c.opening_balance + c.settled + c.live) AS diff) d
          LEFT JOIN LATERAL (SELECT array_agg(t.txn_id ORDER BY t.created_at, t.txn_id) AS ids
                               FROM monitor.src_transactions t
                              WHERE t.account_id = c.account_id AND t.status = 'failed' AND t.amount = d.diff) x
            ON true
         WHERE abs(d.diff) > $3 $r$;
BEGIN
    IF full_pass THEN
        -- every account: one hash join of accounts, totals and the live rows after the horizon
        RETURN QUERY EXECUTE $q$
            WITH live AS (
                SELECT t.account_id, sum(t.amount) AS live FROM monitor.src_transactions t
                 WHERE t.status = 'success' AND t.created_at >= $1 GROUP BY t.account_id
            ), checked AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance,
                       coalesce(tot.success_sum, 0) AS settled, coalesce(l.live, 0) AS live
                  FROM monitor.src_accounts a
                  LEFT JOIN monitor.account_totals tot ON tot.account_id = a.account_id
                  LEFT JOIN live l ON l.account_id = a.account_id
            )$q$ || report USING h, since, tolerance;
    ELSE
        -- only the accounts that may have changed since `since` and that the previous run did not
        -- see (params ->> 'seen'): the accounts updated since then, read by a range scan of
        -- updated_at (their new row versions sit together), the accounts with new or changed
        -- transactions (a row committed late, created after the horizon, included: the live rows
        -- are read anyway), and those with an open event. One GROUP BY gathers them with their live
        -- amounts (after the horizon $1); only the few not updated are then read by key. Every
        -- join left has an index on its inner side: with the new rows not yet in the statistics,
        -- the planner expects a handful of them, and a nested loop over a CTE would be quadratic.
        RETURN QUERY EXECUTE $q$
            WITH src AS (
                SELECT a.account_id, a.balance, a.opening_balance, NULL::numeric AS live,
                       true AS moved, true AS cand
                  FROM monitor.src_accounts a
                 WHERE a.updated_at >= $2 AND (age(a.row_xmin) <= $4) IS NOT FALSE
                UNION ALL
                SELECT t.account_id, NULL, NULL,
                       CASE WHEN t.status = 'success' AND t.created_at >= $1 THEN t.amount END, false,
                       ((t.created_at >= least($1, $2) OR t.updated_at >= $2) AND (age(t.row_xmin) <= $4) IS NOT FALSE)
                       OR ($5 AND t.created_at >= $1)
                  FROM monitor.src_transactions t
                 WHERE t.created_at >= least($1, $2) OR t.updated_at >= $2
                UNION ALL
                SELECT e.subject, NULL, NULL, NULL, false, true FROM monitor.events e
                 WHERE e.detector = 'balance_mismatch' AND e.status <> 'resolved'
            ), per AS MATERIALIZED (
                SELECT s.account_id, max(s.balance) AS balance, max(s.opening_balance) AS opening_balance,
                       coalesce(sum(s.live), 0) AS live, bool_or(s.moved) AS moved
                  FROM src s GROUP BY s.account_id HAVING bool_or(s.cand)
            ), accounts AS (
                SELECT p.account_id, p.balance, p.opening_balance, p.live FROM per p WHERE p.moved
                UNION ALL
                SELECT p.account_id, a.balance, a.opening_balance, p.live
                  FROM per p JOIN monitor.src_accounts a ON a.account_id = p.account_id
                 WHERE NOT p.moved
            ), checked AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance,
                       coalesce(tot.success_sum, 0) AS settled, a.live
                  FROM accounts a LEFT JOIN monitor.account_totals tot ON tot.account_id = a.account_id
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
