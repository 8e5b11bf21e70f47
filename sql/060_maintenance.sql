-- Maintenance jobs: retention (monitor.prune), health snapshots (monitor.snapshot) and
-- materialized-view refresh (monitor.refresh). Scheduled by install as monitor.prune,
-- monitor.snapshot and monitor.refresh (docs/operations.md).

CREATE OR REPLACE FUNCTION monitor.setting(p_key text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT value FROM monitor.settings WHERE key = p_key
$$;

-- Retention. The days to keep for one table: the argument, else the setting, else the default;
-- refused outside 0 .. 36500 days.
CREATE OR REPLACE FUNCTION monitor.retention_cut(p_table text, p_days integer) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_key text := CASE p_table WHEN 'events' THEN 'events_days'
                               WHEN 'alert_history' THEN 'history_days' WHEN 'deliveries' THEN 'history_days'
                               WHEN 'health_snapshots' THEN 'snapshots_days' WHEN 'detector_runs' THEN 'runs_days' END;
    v_days integer := coalesce(p_days, (monitor.setting('retention.' || v_key) #>> '{}')::integer,
                               CASE WHEN p_table IN ('alert_history', 'deliveries') THEN 90 ELSE 30 END);
BEGIN
    IF v_key IS NULL THEN
        RAISE EXCEPTION 'unknown retention table %', p_table USING ERRCODE = '22023';
    END IF;
    IF v_days NOT BETWEEN 0 AND 36500 THEN
        RAISE EXCEPTION '% must be from 0 to 36500 days, not %', v_key, v_days USING ERRCODE = '22023';
    END IF;
    RETURN now() - make_interval(days => v_days);
END
$$;

-- One bounded batch of retention for one table: deletes (with p_dry_run, counts all) rows older than
-- the cut. Open and acknowledged events are never pruned. pg_cron's run records are not pruned here:
-- the prune-cron job does it in pg_cron's database, and `monitorctl prune` runs the same query
-- (monitorctl/schedule.py).
CREATE OR REPLACE FUNCTION monitor.prune_batch(p_table text, p_cut timestamptz, p_limit integer, p_dry_run boolean)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_table text;
    v_key text;
    v_join text := '';
    v_where text;
    n bigint;
BEGIN
    CASE p_table
        WHEN 'events' THEN
            v_table := 'monitor.events'; v_key := 'event_id';
            v_where := $w$t.status = 'resolved' AND t.resolved_at < $1$w$;
        WHEN 'alert_history' THEN
            v_table := 'monitor.alert_history'; v_key := 'history_id'; v_where := 't.created_at < $1';
        WHEN 'deliveries' THEN  -- the notifications sent (or given up) with their attempts
            v_table := 'monitor.deliveries'; v_key := 'delivery_id';
            v_where := $w$t.created_at < $1 AND t.status NOT IN ('pending', 'failed')$w$;
        WHEN 'health_snapshots' THEN
            v_table := 'monitor.health_snapshots'; v_key := 'snapshot_id'; v_where := 't.taken_at < $1';
        WHEN 'detector_runs' THEN
            v_table := 'monitor.detector_runs'; v_key := 'run_id'; v_where := 't.started_at < $1';
        ELSE
            RAISE EXCEPTION 'unknown retention table %', p_table USING ERRCODE = '22023';
    END CASE;
    IF p_dry_run THEN
        EXECUTE format('SELECT count(*) FROM %s t%s WHERE %s', v_table, v_join, v_where) INTO n USING p_cut;
    ELSE
        EXECUTE format('DELETE FROM %1$s WHERE %2$I IN (SELECT t.%2$I FROM %1$s t%3$s WHERE %4$s LIMIT $2)',
                       v_table, v_key, v_join, v_where)
            USING p_cut, p_limit;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    RETURN n;
END
$$;

-- Retention of every table in bounded batches, committing between them, so detection is never
-- blocked for long; reports rows deleted (or, with dry_run, that would be) per table.
-- A procedure with a SET clause cannot COMMIT: it pins its search_path with set_config in each of
-- its transactions instead, so objects planted in a schema of the caller's path are never used.
CREATE OR REPLACE PROCEDURE monitor.prune(
    dry_run boolean DEFAULT false,
    events_days integer DEFAULT NULL,
    history_days integer DEFAULT NULL,
    INOUT events bigint DEFAULT NULL,
    INOUT alert_history bigint DEFAULT NULL,
    INOUT health_snapshots bigint DEFAULT NULL,
    INOUT detector_runs bigint DEFAULT NULL,
    INOUT deliveries bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    v_tables text[];
    v_counts bigint[];
    v_cut timestamptz;
    v_batch integer;
    n bigint;
    i integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
    v_tables := ARRAY['events', 'alert_history', 'health_snapshots', 'detector_runs', 'deliveries'];
    v_counts := ARRAY[0, 0, 0, 0, 0];
    v_batch := coalesce((monitor.setting('retention.batch_size') #>> '{}')::integer, 5000);
    IF v_batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'retention.batch_size must be from 1 to 1000000, not %', v_batch USING ERRCODE = '22023';
    END IF;
    FOR i IN 1 .. 5 LOOP
        v_cut := monitor.retention_cut(v_tables[i], CASE v_tables[i] WHEN 'events' THEN events_days
                                                                      WHEN 'alert_history' THEN history_days
                                                                      WHEN 'deliveries' THEN history_days END);
        LOOP
            n := monitor.prune_batch(v_tables[i], v_cut, v_batch, dry_run);
            v_counts[i] := v_counts[i] + n;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
            EXIT WHEN dry_run OR n < v_batch;
        END LOOP;
    END LOOP;
    events := v_counts[1]; alert_history := v_counts[2]; health_snapshots := v_counts[3];
    detector_runs := v_counts[4]; deliveries := v_counts[5];
END
$$;
COMMENT ON PROCEDURE monitor.prune(boolean, integer, integer, bigint, bigint, bigint, bigint, bigint) IS
    'Retention in bounded batches (docs/operations.md); CALL monitor.prune(dry_run => true) only counts.';

-- One health snapshot: the last hour of traffic, open events by severity, detector lag.
CREATE OR REPLACE FUNCTION monitor.snapshot() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO monitor.health_snapshots (txn_last_hour, successes, failures, success_rate,
                                          open_critical, open_high, open_medium, open_low, detector_lag)
    SELECT t.total, t.ok, t.failed,
           round(t.ok::numeric / nullif(t.ok + t.failed, 0), 4),
           e.critical, e.high, e.medium, e.low,
           (SELECT max(now() - coalesce(r.last_ok, d.enabled_at))
              FROM monitor.detectors d
              LEFT JOIN LATERAL (SELECT max(finished_at) AS last_ok FROM monitor.detector_runs r
                                  WHERE r.detector = d.name AND r.status = 'ok') r ON true
             WHERE d.enabled)
    FROM (SELECT count(*) AS total,
                 count(*) FILTER (WHERE status = 'success') AS ok,
                 count(*) FILTER (WHERE status = 'failed') AS failed
            FROM monitor.src_transactions WHERE created_at >= now() - interval '1 hour' AND is_primary) t,
         (SELECT count(*) FILTER (WHERE severity = 'critical') AS critical,
                 count(*) FILTER (WHERE severity = 'high') AS high,
                 count(*) FILTER (WHERE severity = 'medium') AS medium,
                 count(*) FILTER (WHERE severity = 'low') AS low
            FROM monitor.events WHERE status <> 'resolved') e
    RETURNING snapshot_id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION monitor.snapshot() IS 'Record one row in monitor.health_snapshots (pg_cron: every 5 minutes).';

-- Refresh the materialized views that detectors read (pg_cron: monitor.refresh).
CREATE OR REPLACE FUNCTION monitor.refresh() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    PERFORM monitor.refresh_volume_baseline();
END
$$;
COMMENT ON FUNCTION monitor.refresh() IS 'Refresh monitor''s materialized views (CONCURRENTLY once populated).';
