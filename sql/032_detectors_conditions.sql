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
-- "resolve what no finding saw" stays exact. The open events' accounts are a parameter, not a join
-- with monitor.events: on a Citus cluster the query over the source views runs on the shards, where
-- monitor's tables do not exist.
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
            SELECT o.account_id FROM unnest($4::text[]) AS o(account_id)
        )$q$ || report || $q$ FROM cand c JOIN monitor.src_accounts a ON a.account_id = c.account_id
         WHERE a.balance < 0 AND NOT a.allow_negative $q$
        USING since, monitor.accounts_have_updated_at(), monitor.seen_age(params),
              ARRAY(SELECT e.subject FROM monitor.events e
                     WHERE e.detector = 'negative_balance' AND e.status <> 'resolved');
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
-- The run's time and the open events' txn_ids are parameters of the query, not now() and a join
-- with monitor.events: on a Citus cluster the query runs on the shards, where now() is each worker's
-- own transaction's start (a row exactly `age` old would be judged on another clock) and monitor's
-- tables do not exist.
CREATE OR REPLACE FUNCTION monitor.detect_stuck_pending(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    report text := $r$
    SELECT t.account_id, t.txn_id, t.txn_id, t.amount,
           format('transaction %s on %s pending for %s', t.txn_id, t.account_id,
                  date_trunc('second', $3 - t.created_at)),
           jsonb_build_object('txn_id', t.txn_id, 'account_id', t.account_id, 'amount', t.amount,
                              'status', t.status, 'created_at', t.created_at, 'device_id', t.device_id,
                              'pending_for', ($3 - t.created_at)::text, 'age', $1 ->> 'age') $r$;
BEGIN
    IF NOT params ? 'seen' THEN
        -- a one-shot plan per run: the planner sees the actual time (an index range scan)
        RETURN QUERY EXECUTE report || $q$
          FROM monitor.src_transactions t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < $3 - ($1 ->> 'age')::interval $q$ USING params, since, now();
    ELSE
        RETURN QUERY EXECUTE report || $q$
          FROM (SELECT DISTINCT ON (c.txn_id) c.* FROM (
                    SELECT t.* FROM monitor.src_transactions t
                     WHERE t.created_at >= $2 - ($1 ->> 'age')::interval
                       AND t.created_at < $3 - ($1 ->> 'age')::interval
                    UNION ALL
                    SELECT t.* FROM monitor.src_transactions t
                     WHERE t.txn_id = ANY ($4)) c
                 ORDER BY c.txn_id, c.is_primary DESC) t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < $3 - ($1 ->> 'age')::interval $q$
        USING params, since, now(),
              ARRAY(SELECT e.txn_id FROM monitor.events e
                     WHERE e.detector = 'stuck_pending' AND e.status <> 'resolved' AND e.txn_id IS NOT NULL);
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
-- Each statement reads either the source views or monitor's tables, never both, and gets the run's
-- time as a parameter: on a Citus cluster a statement over the source views runs on the shards
-- (each counts its own rows, the coordinator adds them up), where monitor's tables do not exist and
-- now() is each worker's own transaction's start. Found minutes travel as an array.
CREATE OR REPLACE FUNCTION monitor.prepare_failure_rate(params jsonb, since timestamptz)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    lo timestamptz := date_trunc('minute', now() - (params ->> 'window')::interval);
    changed timestamptz[];
    touched timestamptz[];
    run_lo timestamptz[];
    run_hi timestamptz[];
    i integer;
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
         WHERE t.created_at >= $1 AND t.created_at <= $2 AND t.is_primary
         GROUP BY 1 $q$ USING lo, now();
    ELSE
        -- the older minutes of the rows changed since `since`
        EXECUTE $q$
        SELECT coalesce(array_agg(c.minute), '{}') FROM (
            SELECT DISTINCT date_trunc('minute', t.created_at) AS minute FROM monitor.src_transactions t
             WHERE t.updated_at >= $1 AND t.created_at >= $2 AND t.created_at < $1) c $q$
        INTO changed USING since, lo;
        touched := ARRAY(SELECT c.minute FROM unnest(changed) AS c(minute)
                         UNION  -- (each minute once: it is counted once)
                         SELECT generate_series(date_trunc('minute', greatest(since, lo)), date_trunc('minute', now()),
                                                interval '1 minute'));
        DELETE FROM monitor.failure_minutes f WHERE f.minute = ANY (touched);
        -- the touched minutes as runs of consecutive minutes [run_lo, run_hi) (the late window's is one),
        -- each counted by a statement of its own: an index range scan over a known range, whatever the
        -- statistics say (a join with the list of runs may be planned as a scan of the whole table)
        SELECT coalesce(array_agg(r.lo), '{}'), coalesce(array_agg(r.hi), '{}') INTO run_lo, run_hi
          FROM (SELECT min(x.minute) AS lo, max(x.minute) + interval '1 minute' AS hi
                  FROM (SELECT c.minute, c.minute - make_interval(mins => (row_number() OVER (ORDER BY c.minute))::integer)
                                   AS island
                          FROM unnest(touched) AS c(minute)) x
                 GROUP BY x.island) r;
        FOR i IN 1 .. cardinality(run_lo) LOOP
            EXECUTE $q$
            INSERT INTO monitor.failure_minutes (minute, succeeded, failed)
            SELECT date_trunc('minute', t.created_at), count(*) FILTER (WHERE t.status = 'success'),
                   count(*) FILTER (WHERE t.status = 'failed')
              FROM monitor.src_transactions t
             WHERE t.created_at >= $1 AND t.created_at < $2 AND t.created_at <= $3 AND t.is_primary
             GROUP BY 1
            HAVING count(*) FILTER (WHERE t.status IN ('success', 'failed')) > 0 $q$ USING run_lo[i], run_hi[i], now();
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION monitor.prepare_failure_rate(jsonb, timestamptz) IS
    'Bring monitor.failure_minutes up to date before failure_rate runs (the whole window without `seen`).';

CREATE OR REPLACE FUNCTION monitor.detect_failure_rate(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    head_ok bigint;      -- the rows of the window's partial first minute
    head_failed bigint;
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    EXECUTE $q$
    SELECT count(*) FILTER (WHERE t.status = 'success'), count(*) FILTER (WHERE t.status = 'failed')
      FROM monitor.src_transactions t
     WHERE t.created_at >= $1 - ($2 ->> 'window')::interval
       AND t.created_at < date_trunc('minute', $1 - ($2 ->> 'window')::interval) + interval '1 minute'
       AND t.created_at <= $1 AND t.is_primary $q$
    INTO head_ok, head_failed USING now(), params;
    RETURN QUERY
    WITH c AS (
        SELECT head_ok + coalesce(sum(m.succeeded), 0) AS ok, head_failed + coalesce(sum(m.failed), 0) AS failed
          FROM monitor.failure_minutes m
         WHERE m.minute > date_trunc('minute', now() - (params ->> 'window')::interval)
    )
    SELECT 'system', 'system', NULL::text, NULL::numeric,
           format('%s of %s transactions failed in the last %s (%s%%, threshold %s%%)', c.failed, c.ok + c.failed,
                  params ->> 'window', round(100.0 * c.failed / (c.ok + c.failed), 1),
                  round(100 * (params ->> 'threshold')::numeric, 1)),
           jsonb_build_object('failed', c.failed, 'succeeded', c.ok, 'total', c.ok + c.failed,
                              'rate', round(c.failed::numeric / (c.ok + c.failed), 4),
                              'window', params ->> 'window', 'threshold', params -> 'threshold',
                              'min_volume', params -> 'min_volume', 'from', now() - (params ->> 'window')::interval,
                              'to', now())
      FROM c
     WHERE c.ok + c.failed >= (params ->> 'min_volume')::numeric
       AND c.ok + c.failed > 0
       AND c.failed::numeric / (c.ok + c.failed) > (params ->> 'threshold')::numeric;
END
$$;
COMMENT ON FUNCTION monitor.detect_failure_rate(jsonb, timestamptz) IS
    'failure_rate: failed/(success+failed) over the trailing window above threshold, with min_volume.';
