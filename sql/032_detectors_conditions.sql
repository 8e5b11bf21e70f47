-- Condition detectors (docs/detectors.md): negative_balance, stuck_pending, failure_rate. A condition
-- detector returns every instance that holds now; the runner resolves the ones that vanished.

-- An account whose balance is below zero.
CREATE OR REPLACE FUNCTION monitor.detect_negative_balance(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT a.account_id, a.account_id, NULL::text, a.balance,
           format('account %s has a negative balance of %s', a.account_id, a.balance),
           jsonb_build_object('account_id', a.account_id, 'balance', a.balance,
                              'opening_balance', a.opening_balance, 'updated_at', a.updated_at)
      FROM monitor.src_accounts a
     WHERE a.balance < 0
    $q$ USING params, since;
END
$$;
COMMENT ON FUNCTION monitor.detect_negative_balance(jsonb, timestamptz) IS
    'negative_balance: an account whose balance is below zero.';

-- A transaction still pending more than `age` after it was created.
CREATE OR REPLACE FUNCTION monitor.detect_stuck_pending(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT t.account_id, t.txn_id, t.txn_id, t.amount,
           format('transaction %s on %s pending for %s', t.txn_id, t.account_id,
                  date_trunc('second', now() - t.created_at)),
           jsonb_build_object('txn_id', t.txn_id, 'account_id', t.account_id, 'amount', t.amount,
                              'status', t.status, 'created_at', t.created_at, 'device_id', t.device_id,
                              'pending_for', (now() - t.created_at)::text, 'age', $1 ->> 'age')
      FROM monitor.src_transactions t
     WHERE t.status = 'pending'
       AND t.created_at < now() - ($1 ->> 'age')::interval
    $q$ USING params, since;
END
$$;
COMMENT ON FUNCTION monitor.detect_stuck_pending(jsonb, timestamptz) IS
    'stuck_pending: a transaction created more than `age` before the run and still pending.';

-- The failure share over the trailing window [now - window, now].
CREATE OR REPLACE FUNCTION monitor.detect_failure_rate(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH c AS (
        SELECT count(*) FILTER (WHERE t.status = 'success') AS ok,
               count(*) FILTER (WHERE t.status = 'failed') AS failed
          FROM monitor.src_transactions t
         WHERE t.created_at >= now() - ($1 ->> 'window')::interval AND t.created_at <= now()
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
