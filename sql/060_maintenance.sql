-- Maintenance jobs: retention (monitor.prune), health snapshots (monitor.snapshot) and
-- materialized-view refresh (monitor.refresh). Scheduled by install as monitor.prune,
-- monitor.snapshot and monitor.refresh (CONTRACT §4, §5).

CREATE OR REPLACE FUNCTION monitor.setting(p_key text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor AS $$
    SELECT value FROM monitor.settings WHERE key = p_key
$$;

-- Retention. When pg_cron lives in this database, this database's own jobs' run records are pruned
-- here; jobs of other databases are pruned by their monitor.<db>.prune-cron job.
-- Deletes in bounded batches and commits between them, so detection is never blocked
-- for long; reports rows deleted (or, with dry_run, that would be) per table.
CREATE OR REPLACE PROCEDURE monitor.prune(
    dry_run boolean DEFAULT false,
    events_days integer DEFAULT NULL,
    history_days integer DEFAULT NULL,
    INOUT events bigint DEFAULT NULL,
    INOUT alert_history bigint DEFAULT NULL,
    INOUT health_snapshots bigint DEFAULT NULL,
    INOUT detector_runs bigint DEFAULT NULL,
    INOUT cron_job_run_details bigint DEFAULT NULL)
-- No SET clause here: a procedure that has one cannot COMMIT. Every name below is schema-qualified.
LANGUAGE plpgsql AS $$
DECLARE
    batch integer := coalesce((monitor.setting('retention.batch_size') #>> '{}')::integer, 5000);
    ev_cut timestamptz := now() - make_interval(days => coalesce(events_days,
                              (monitor.setting('retention.events_days') #>> '{}')::integer, 30));
    hist_cut timestamptz := now() - make_interval(days => coalesce(history_days,
                              (monitor.setting('retention.history_days') #>> '{}')::integer, 90));
    snap_cut timestamptz := now() - make_interval(days =>
                              coalesce((monitor.setting('retention.snapshots_days') #>> '{}')::integer, 30));
    runs_cut timestamptz := now() - make_interval(days =>
                              coalesce((monitor.setting('retention.runs_days') #>> '{}')::integer, 30));
    cron_cut timestamptz := now() - make_interval(days =>
                              coalesce((monitor.setting('retention.cron_runs_days') #>> '{}')::integer, 30));
    n bigint;
    has_cron boolean := to_regclass('cron.job_run_details') IS NOT NULL;
BEGIN
    events := 0; alert_history := 0; health_snapshots := 0; detector_runs := 0; cron_job_run_details := 0;
    IF dry_run THEN
        SELECT count(*) INTO events FROM monitor.events e WHERE e.status = 'resolved' AND e.resolved_at < ev_cut;
        SELECT count(*) INTO alert_history FROM monitor.alert_history h WHERE h.created_at < hist_cut;
        SELECT count(*) INTO health_snapshots FROM monitor.health_snapshots s WHERE s.taken_at < snap_cut;
        SELECT count(*) INTO detector_runs FROM monitor.detector_runs r WHERE r.started_at < runs_cut;
        IF has_cron THEN
            EXECUTE 'SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                     WHERE j.jobname ~ ''^monitor\.[^.]+$'' AND d.end_time < $1' INTO cron_job_run_details USING cron_cut;
        END IF;
        RETURN;
    END IF;
    LOOP  -- open and acknowledged events are never pruned
        DELETE FROM monitor.events WHERE event_id IN (
            SELECT e.event_id FROM monitor.events e
             WHERE e.status = 'resolved' AND e.resolved_at < ev_cut LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        events := events + n;
        COMMIT;
        EXIT WHEN n < batch;
    END LOOP;
    LOOP
        DELETE FROM monitor.alert_history WHERE history_id IN (
            SELECT h.history_id FROM monitor.alert_history h WHERE h.created_at < hist_cut LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        alert_history := alert_history + n;
        COMMIT;
        EXIT WHEN n < batch;
    END LOOP;
    LOOP
        DELETE FROM monitor.health_snapshots WHERE snapshot_id IN (
            SELECT s.snapshot_id FROM monitor.health_snapshots s WHERE s.taken_at < snap_cut LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        health_snapshots := health_snapshots + n;
        COMMIT;
        EXIT WHEN n < batch;
    END LOOP;
    LOOP
        DELETE FROM monitor.detector_runs WHERE run_id IN (
            SELECT r.run_id FROM monitor.detector_runs r WHERE r.started_at < runs_cut LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        detector_runs := detector_runs + n;
        COMMIT;
        EXIT WHEN n < batch;
    END LOOP;
    IF has_cron THEN
        LOOP
            EXECUTE 'DELETE FROM cron.job_run_details WHERE runid IN (
                       SELECT d.runid FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                        WHERE j.jobname ~ ''^monitor\.[^.]+$'' AND d.end_time < $1 LIMIT $2)' USING cron_cut, batch;
            GET DIAGNOSTICS n = ROW_COUNT;
            cron_job_run_details := cron_job_run_details + n;
            COMMIT;
            EXIT WHEN n < batch;
        END LOOP;
    END IF;
END
$$;
COMMENT ON PROCEDURE monitor.prune(boolean, integer, integer, bigint, bigint, bigint, bigint, bigint) IS
    'Retention (CONTRACT §4) in bounded batches; CALL monitor.prune(dry_run => true) only counts.';

-- One health snapshot: the last hour of traffic, open events by severity, detector lag.
CREATE OR REPLACE FUNCTION monitor.snapshot() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor AS $$
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
            FROM monitor.src_transactions WHERE created_at >= now() - interval '1 hour') t,
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor AS $$
BEGIN
    PERFORM monitor.refresh_volume_baseline();
END
$$;
COMMENT ON FUNCTION monitor.refresh() IS 'Refresh monitor''s materialized views (CONCURRENTLY once populated).';
