-- Condition detectors (docs/detectors.md): negative_balance, stuck_pending, failure_rate. A condition
-- detector returns every instance that holds now; the runner resolves the ones that vanished.

-- An account whose balance is below zero, unless the mapping allows it (accounts.allow_negative: a
-- system account negative by design). A full pass (a run without `seen`: the first, a rescan,
-- one every `full_pass`) reads every account; the runs between read only the accounts that may
-- have changed since `since` (the run's start less `late_window`) and that the previous run did
-- not see, and those with an open event (so that one whose balance recovered resolves):
-- the accounts updated since then when the mapping gives accounts an updated_at, else the accounts
-- of the transactions created or changed since then (all of them, seen or not: a balance may move
-- after its transaction was read). Every open event's account is checked, so the runner's
-- "resolve what no finding saw" stays exact.
CREATE OR REPLACE FUNCTION monitor.detect_negative_balance(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    report text := $r$
    SELECT a.account_id, a.account_id, NULL::text, a.balance,
           format('account %s has a negative balance of %s', a.account_id, a.balance),
           jsonb_build_object('account_id', a.account_id, 'balance', a.balance,
                              'opening_balance', a.opening_balance, 'updated_at', a.updated_at) $r$;
BEGIN
    IF NOT params ? 'seen' THEN
        RETURN QUERY EXECUTE report || $q$ FROM monitor.src_accounts a WHERE a.balance < 0 AND NOT a.allow_negative $q$;
    ELSE
        -- a one-shot plan per run: the planner sees the actual window (index range scans)
        RETURN QUERY EXECUTE $q$
        WITH cand AS (
            SELECT a.account_id FROM monitor.src_accounts a
             WHERE $2 AND a.updated_at >= $1 AND (age(a.row_xmin) <= $3) IS NOT FALSE
            UNION
            SELECT t.account_id FROM monitor.src_transactions t
             WHERE NOT $2 AND (t.created_at >= $1 OR t.updated_at >= $1)
            UNION
            SELECT e.subject FROM monitor.events e
             WHERE e.detector = 'negative_balance' AND e.status <> 'resolved'
        )$q$ || report || $q$ FROM cand c JOIN monitor.src_accounts a ON a.account_id = c.account_id
         WHERE a.balance < 0 AND NOT a.allow_negative $q$
        USING since, monitor.accounts_have_updated_at(), monitor.seen_age(params);
    END IF;
END
$$;
COMMENT ON FUNCTION monitor.detect_negative_balance(jsonb, timestamptz) IS
    'negative_balance: an account whose balance is below zero.';

-- A transaction still pending more than `age` after it was created (a transfer once, on its debit
-- leg). A full pass (a run without `seen`: the first, a rescan, one every `full_pass`) reads every
-- pending row older than the age (through a partial index on pending rows, when the table has
-- one); the runs between read only the rows that came of age since the previous run (created in
-- [since - age, now - age), since being that run's start less late_window) and the rows of the open
-- events, by txn_id (so that one settled resolves): O(new rows) without a partial index, and where
-- the status comes from appended answers, which no index can select.
CREATE OR REPLACE FUNCTION monitor.detect_stuck_pending(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    report text := $r$
    SELECT t.account_id, t.txn_id, t.txn_id, t.amount,
           format('transaction %s on %s pending for %s', t.txn_id, t.account_id,
                  date_trunc('second', now() - t.created_at)),
           jsonb_build_object('txn_id', t.txn_id, 'account_id', t.account_id, 'amount', t.amount,
                              'status', t.status, 'created_at', t.created_at, 'device_id', t.device_id,
                              'pending_for', (now() - t.created_at)::text, 'age', $1 ->> 'age') $r$;
BEGIN
    IF NOT params ? 'seen' THEN
        -- a one-shot plan per run: the planner sees the actual time (an index range scan)
        RETURN QUERY EXECUTE report || $q$
          FROM monitor.src_transactions t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < now() - ($1 ->> 'age')::interval $q$ USING params, since;
    ELSE
        RETURN QUERY EXECUTE report || $q$
          FROM (SELECT DISTINCT ON (c.txn_id) c.* FROM (
                    SELECT t.* FROM monitor.src_transactions t
                     WHERE t.created_at >= $2 - ($1 ->> 'age')::interval
                       AND t.created_at < now() - ($1 ->> 'age')::interval
                    UNION ALL
                    SELECT o.* FROM monitor.events e
                     CROSS JOIN LATERAL (SELECT t.* FROM monitor.src_transactions t
                                          WHERE t.txn_id = e.txn_id OFFSET 0) o
                     WHERE e.detector = 'stuck_pending' AND e.status <> 'resolved') c
                 ORDER BY c.txn_id, c.is_primary DESC) t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < now() - ($1 ->> 'age')::interval $q$ USING params, since;
    END IF;
END
$$;
COMMENT ON FUNCTION monitor.detect_stuck_pending(jsonb, timestamptz) IS
    'stuck_pending: a transaction created more than `age` before the run and still pending.';

-- The failure share over the trailing window [now - window, now], from per-minute counts
-- (monitor.failure_minutes). prepare_failure_rate recounts the minutes that may have changed since
-- the previous run: those from `since` (the run's start less `late_window`) on, and those of rows
-- changed since then (transactions.updated_at); a full pass (a run without `seen`: the first, a
-- rescan, one every `full_pass`) recounts the whole window, as does every run when the mapping gives
-- transactions no updated_at (a pending row that fails later changes an older minute). The detector
-- adds up the minutes inside the window and counts the rows of its partial first minute.
CREATE OR REPLACE FUNCTION monitor.prepare_failure_rate(params jsonb, since timestamptz)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    lo timestamptz := date_trunc('minute', now() - (params ->> 'window')::interval);
BEGIN
    DELETE FROM monitor.failure_minutes m WHERE m.minute < lo;
    IF NOT params ? 'seen' OR NOT monitor.transactions_have_updated_at()
       OR NOT EXISTS (SELECT FROM monitor.failure_minutes) THEN  -- empty: a crash emptied the cache
        DELETE FROM monitor.failure_minutes;
        -- EXECUTE: a one-shot plan that sees the actual time range
        EXECUTE $q$
        INSERT INTO monitor.failure_minutes (minute, succeeded, failed)
        SELECT date_trunc('minute', t.created_at), count(*) FILTER (WHERE t.status = 'success'),
               count(*) FILTER (WHERE t.status = 'failed')
          FROM monitor.src_transactions t
         WHERE t.created_at >= $1 AND t.created_at <= now() AND t.is_primary
         GROUP BY 1 $q$ USING lo;
    ELSE
        EXECUTE $q$
        WITH touched AS (
            SELECT m.minute FROM generate_series(date_trunc('minute', greatest($1, $2)),
                                                  date_trunc('minute', now()), interval '1 minute') m(minute)
            UNION
            SELECT date_trunc('minute', t.created_at) FROM monitor.src_transactions t
             WHERE t.updated_at >= $1 AND t.created_at >= $2 AND t.created_at < $1
        ), counted AS (
            SELECT m.minute, c.succeeded, c.failed
              FROM touched m
             CROSS JOIN LATERAL (
                   SELECT count(*) FILTER (WHERE t.status = 'success') AS succeeded,
                          count(*) FILTER (WHERE t.status = 'failed') AS failed
                     FROM monitor.src_transactions t
                    WHERE t.created_at >= m.minute AND t.created_at < m.minute + interval '1 minute'
                      AND t.created_at <= now() AND t.is_primary) c
        ), gone AS (
            DELETE FROM monitor.failure_minutes f USING counted c
             WHERE f.minute = c.minute AND c.succeeded + c.failed = 0
        )
        INSERT INTO monitor.failure_minutes AS f (minute, succeeded, failed)
        SELECT c.minute, c.succeeded, c.failed FROM counted c WHERE c.succeeded + c.failed > 0
        ON CONFLICT (minute) DO UPDATE SET succeeded = excluded.succeeded, failed = excluded.failed
        $q$ USING since, lo;
    END IF;
END
$$;
COMMENT ON FUNCTION monitor.prepare_failure_rate(jsonb, timestamptz) IS
    'Bring monitor.failure_minutes up to date before failure_rate runs (the whole window without `seen`).';

CREATE OR REPLACE FUNCTION monitor.detect_failure_rate(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH parts AS (
        SELECT m.succeeded AS ok, m.failed FROM monitor.failure_minutes m
         WHERE m.minute > date_trunc('minute', now() - ($1 ->> 'window')::interval)
        UNION ALL
        SELECT count(*) FILTER (WHERE t.status = 'success'), count(*) FILTER (WHERE t.status = 'failed')
          FROM monitor.src_transactions t
         WHERE t.created_at >= now() - ($1 ->> 'window')::interval
           AND t.created_at < date_trunc('minute', now() - ($1 ->> 'window')::interval) + interval '1 minute'
           AND t.created_at <= now() AND t.is_primary
    ), c AS (
        SELECT coalesce(sum(p.ok), 0) AS ok, coalesce(sum(p.failed), 0) AS failed FROM parts p
    )
    SELECT 'system', 'system', NULL::text, NULL::numeric,
           format('%s of %s transactions failed in the last %s (%s%%, threshold %s%%)', c.failed, c.ok + c.failed,
                  $1 ->> 'window', round(100.0 * c.failed / (c.ok + c.failed), 1),
                  round(100 * ($1 ->> 'threshold')::numeric, 1)),
           jsonb_build_object('failed', c.failed, 'succeeded', c.ok, 'total', c.ok + c.failed,
                              'rate', round(c.failed::numeric / (c.ok + c.failed), 4),
                              'window', $1 ->> 'window', 'threshold', $1 -> 'threshold',
                              'min_volume', $1 -> 'min_volume', 'from', now() - ($1 ->> 'window')::interval,
                              'to', now())
      FROM c
     WHERE c.ok + c.failed >= ($1 ->> 'min_volume')::numeric
       AND c.ok + c.failed > 0
       AND c.failed::numeric / (c.ok + c.failed) > ($1 ->> 'threshold')::numeric
    $q$ USING params, since;
END
$$;
COMMENT ON FUNCTION monitor.detect_failure_rate(jsonb, timestamptz) IS
    'failure_rate: failed/(success+failed) over the trailing window above threshold, with min_volume.';
