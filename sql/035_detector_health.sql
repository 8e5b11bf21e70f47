-- detector_health (docs/detectors.md): an enabled, scheduled detector whose latest run failed, or that
-- has not completed a run within overdue_factor x the longest gap between ticks of its schedule.

-- The database pg_cron runs in (cron.database_name), or NULL when pg_cron is not loaded. Only
-- superusers and pg_read_all_settings may read that setting, so this runs with the rights of
-- monitor's owner: `monitorctl status` run by monitor_reader finds pg_cron through it.
CREATE OR REPLACE FUNCTION monitor.cron_database() RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    RETURN nullif(current_setting('cron.database_name', true), '');
EXCEPTION WHEN insufficient_privilege THEN
    RETURN NULL;
END
$$;

-- Expand one cron field ('*', '*/n', 'a', 'a-b', 'a-b/n', lists) to its values in [lo, hi].
CREATE OR REPLACE FUNCTION monitor.cron_field(p_field text, lo integer, hi integer) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    part text;
    m text[];
    a integer; b integer; step integer;
    out integer[] := '{}';
BEGIN
    FOREACH part IN ARRAY string_to_array(p_field, ',') LOOP
        m := regexp_match(part, '^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$');
        IF m IS NULL THEN
            RAISE EXCEPTION 'cannot read cron field %', p_field;
        END IF;
        step := coalesce(m[4]::integer, 1);
        IF m[1] = '*' THEN a := lo; b := hi;
        ELSE a := m[2]::integer; b := coalesce(m[3]::integer, CASE WHEN m[4] IS NULL THEN a ELSE hi END);
        END IF;
        out := out || ARRAY(SELECT generate_series(a, b, step));
    END LOOP;
    RETURN out;
END
$$;

-- The longest gap between consecutive ticks of a pg_cron schedule.
CREATE OR REPLACE FUNCTION monitor.cron_max_gap(p_schedule text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    f text[];
    minutes integer[];
    hours integer[];
    doms integer[];
    months integer[];
    dows integer[];
    day_ticks integer[];  -- minutes of the day with a tick
    d date;
    prev_day date;
    gap integer := 0;
    i integer;
BEGIN
    IF monitor.schedule_seconds(p_schedule) IS NOT NULL THEN  -- (sql/050_registry.sql: the one pattern)
        RETURN make_interval(secs => monitor.schedule_seconds(p_schedule));
    END IF;
    f := regexp_split_to_array(trim(CASE lower(trim(p_schedule))
        WHEN '@hourly' THEN '0 * * * *' WHEN '@daily' THEN '0 0 * * *' WHEN '@weekly' THEN '0 0 * * 0'
        WHEN '@monthly' THEN '0 0 1 * *' WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
        ELSE p_schedule END), '\s+');
    IF cardinality(f) <> 5 THEN
        RETURN NULL;  -- @reboot or unreadable: not judged
    END IF;
    minutes := monitor.cron_field(f[1], 0, 59);
    hours := monitor.cron_field(f[2], 0, 23);
    doms := monitor.cron_field(f[3], 1, 31);
    months := monitor.cron_field(f[4], 1, 12);
    dows := ARRAY(SELECT x % 7 FROM unnest(monitor.cron_field(f[5], 0, 7)) x);
    day_ticks := ARRAY(SELECT h * 60 + m FROM unnest(hours) h, unnest(minutes) m ORDER BY 1);
    FOR i IN 2 .. cardinality(day_ticks) LOOP
        gap := greatest(gap, day_ticks[i] - day_ticks[i - 1]);
    END LOOP;
    -- days with ticks over two (leap-including) years; cron ORs day-of-month and day-of-week when
    -- both are restricted
    FOR d IN SELECT g::date FROM generate_series(date '2024-01-01', date '2025-12-31', interval '1 day') g LOOP
        CONTINUE WHEN NOT (extract(month FROM d)::integer = ANY (months));
        CONTINUE WHEN NOT CASE
            WHEN f[3] <> '*' AND f[5] <> '*' THEN extract(day FROM d)::integer = ANY (doms)
                                                 OR extract(dow FROM d)::integer = ANY (dows)
            WHEN f[3] <> '*' THEN extract(day FROM d)::integer = ANY (doms)
            WHEN f[5] <> '*' THEN extract(dow FROM d)::integer = ANY (dows)
            ELSE true END;
        IF prev_day IS NOT NULL THEN
            gap := greatest(gap, (d - prev_day) * 1440 - day_ticks[cardinality(day_ticks)] + day_ticks[1]);
        END IF;
        prev_day := d;
    END LOOP;
    RETURN make_interval(mins => gap);
END
$$;
COMMENT ON FUNCTION monitor.cron_max_gap(text) IS
    'Longest gap between consecutive ticks of a cron schedule (or N seconds), for detector_health.';

CREATE OR REPLACE FUNCTION monitor.detect_detector_health(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    d record;
    last_run monitor.detector_runs;
    last_done timestamptz;
    gap interval;
    cron_fail record;
    has_cron boolean := to_regclass('cron.job_run_details') IS NOT NULL
                        AND monitor.cron_database() = current_database()
                        AND has_table_privilege('cron.job_run_details', 'SELECT');
BEGIN
    FOR d IN SELECT * FROM monitor.detectors
              WHERE enabled AND scheduled AND name <> 'detector_health' ORDER BY name LOOP
        SELECT * INTO last_run FROM monitor.detector_runs r
         WHERE r.detector = d.name AND r.status <> 'skipped' ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1;
        IF FOUND AND last_run.status = 'error' THEN
            RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                format('detector %s failed at %s: %s', d.name, last_run.finished_at, last_run.error),
                jsonb_build_object('detector', d.name, 'problem', 'failed', 'run_id', last_run.run_id,
                                   'started_at', last_run.started_at, 'finished_at', last_run.finished_at,
                                   'error', last_run.error))::monitor.finding;
            CONTINUE;
        END IF;
        gap := monitor.cron_max_gap(d.schedule);
        CONTINUE WHEN gap IS NULL;
        last_done := greatest(last_run.finished_at, d.enabled_at);
        IF now() - last_done > (params ->> 'overdue_factor')::numeric * gap THEN
            RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                format('detector %s has not completed a run since %s (schedule %s)', d.name, last_done, d.schedule),
                jsonb_build_object('detector', d.name, 'problem', 'overdue', 'last_completed', last_run.finished_at,
                                   'enabled_at', d.enabled_at, 'schedule', d.schedule, 'max_gap', gap::text,
                                   'overdue_after', ((params ->> 'overdue_factor')::numeric * gap)::text))::monitor.finding;
            CONTINUE;
        END IF;
        IF has_cron THEN
            EXECUTE $q$SELECT r.status, r.return_message, r.end_time FROM cron.job_run_details r
                        JOIN cron.job j USING (jobid)
                       WHERE j.jobname = 'monitor.' || $1 ORDER BY r.runid DESC LIMIT 1$q$
               INTO cron_fail USING d.name;
            IF cron_fail.status = 'failed' THEN
                RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                    format('pg_cron job monitor.%s failed: %s', d.name, cron_fail.return_message),
                    jsonb_build_object('detector', d.name, 'problem', 'cron_job_failed',
                                       'return_message', cron_fail.return_message,
                                       'end_time', cron_fail.end_time))::monitor.finding;
            END IF;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION monitor.detect_detector_health(jsonb, timestamptz) IS
    'detector_health: a scheduled detector whose latest run (or pg_cron job) failed, or that is overdue.';

-- detector_health's judgement now, for `monitorctl status` (any role with monitor_reader): with the
-- rights of monitor's owner, who may read pg_cron's run records that a reader cannot.
CREATE OR REPLACE FUNCTION monitor.detector_problems() RETURNS SETOF monitor.finding
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT * FROM monitor.detect_detector_health(
        coalesce((SELECT d.params FROM monitor.detectors d WHERE d.name = 'detector_health'),
                 monitor.common_params('condition') || '{"overdue_factor": 3}'), now())
$$;
COMMENT ON FUNCTION monitor.detector_problems() IS
    'Detectors failing or overdue now, as detector_health judges them (for monitorctl status).';
