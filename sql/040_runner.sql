-- The runner: the only writer of monitor.events (docs/architecture.md). A detector is a pure function
-- returning SETOF monitor.finding; the runner deduplicates, opens, updates and auto-resolves events,
-- logs every transition in monitor.alert_history, advances the watermark and records the run.

-- An interval as a GUC value in milliseconds ('5 seconds' -> '5000ms').
CREATE OR REPLACE FUNCTION monitor.interval_ms(p_interval text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$ SELECT round(extract(epoch FROM p_interval::interval) * 1000)::bigint || 'ms' $$;

-- Append one lifecycle transition to the history and announce it after commit.
CREATE OR REPLACE FUNCTION monitor.log_transition(p_event monitor.events, p_transition text,
                                                  p_actor text, p_note text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    INSERT INTO monitor.alert_history (event_id, transition, actor, note, detector, severity, subject, summary)
    VALUES (p_event.event_id, p_transition, p_actor, p_note, p_event.detector, p_event.severity,
            p_event.subject, p_event.summary);
    PERFORM pg_notify('monitor_events', json_build_object(
        'event_id', p_event.event_id, 'detector', p_event.detector, 'severity', p_event.severity,
        'transition', p_transition)::text);
END
$$;

-- Rows the running detector's previous run already saw: those written by transactions that had
-- finished when that run took its snapshot, i.e. older than its snapshot's xmin. A built-in
-- detector examines a row of its late window only when age(row_xmin) <= seen_age(), so a stream
-- of rows is read about once rather than once per minute of the late window. The runner sets
-- monitor.seen_xmin for the run; unset (a first run, a --since rescan, a view without xmin as the
-- source), every row from `since` on is examined.
CREATE OR REPLACE FUNCTION monitor.seen_age() RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT coalesce(age(((nullif(current_setting('monitor.seen_xmin', true), '')::xid8::text::bigint
                          % 4294967296)::text)::xid), 2147483647)
$$;

-- The earliest row time a finding detector must examine in this run.
CREATE OR REPLACE FUNCTION monitor.run_since(p_detector monitor.detectors, p_override timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT coalesce(
        p_override,
        (SELECT w.high_water - coalesce(monitor.param_interval(p_detector.params, 'late_window'), interval '0')
           FROM monitor.watermarks w WHERE w.detector = p_detector.name),
        now() - coalesce(monitor.param_interval(p_detector.params, 'first_lookback'), interval '24 hours'))
$$;

-- Fold the findings of one run into monitor.events. Returns (opened, updated, resolved).
-- force_custom_plan: each lookup is planned with its keys, an index probe; a cached generic plan
-- would read every event of the detector per finding (quadratic in the findings of one run).
CREATE OR REPLACE FUNCTION monitor.apply_findings(p_detector monitor.detectors, p_findings monitor.finding[],
                                                  OUT opened integer, OUT updated integer, OUT resolved integer)
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    f monitor.finding;
    keys text[];
    seen text[] := '{}';
    ev monitor.events;
BEGIN
    opened := 0; updated := 0; resolved := 0;
    FOREACH f IN ARRAY p_findings LOOP
        CONTINUE WHEN f.dedup_key IS NULL;
        -- A growing burst or run may name other rows that identify an event already open for it.
        keys := ARRAY[f.dedup_key] || coalesce(ARRAY(SELECT jsonb_array_elements_text(f.evidence -> 'member_keys')), '{}');
        SELECT * INTO ev FROM monitor.events e
         WHERE e.detector = p_detector.name AND e.dedup_key = ANY (keys) AND e.status <> 'resolved'
         ORDER BY (e.dedup_key = f.dedup_key) DESC, e.event_id
         LIMIT 1 FOR UPDATE;
        IF FOUND THEN
            seen := seen || ev.dedup_key;
            UPDATE monitor.events e
               SET last_seen = now(), occurrences = e.occurrences + 1, evidence = f.evidence,
                   summary = coalesce(f.summary, e.summary), amount = f.amount,
                   txn_id = coalesce(e.txn_id, f.txn_id), subject = coalesce(f.subject, e.subject),
                   severity = p_detector.severity
             WHERE e.event_id = ev.event_id;
            IF ev.severity <> p_detector.severity THEN
                ev.severity := p_detector.severity;
                PERFORM monitor.log_transition(ev, 'severity_changed', 'auto',
                                               format('severity is now %s', p_detector.severity));
            END IF;
            updated := updated + 1;
            CONTINUE;
        END IF;
        -- A finding is recorded once: one already resolved by a person is not opened again.
        IF p_detector.kind = 'finding' AND EXISTS (
            SELECT FROM monitor.events e WHERE e.detector = p_detector.name AND e.dedup_key = ANY (keys)) THEN
            CONTINUE;
        END IF;
        INSERT INTO monitor.events (detector, kind, severity, subject, dedup_key, txn_id, amount, summary, evidence)
        VALUES (p_detector.name, p_detector.kind, p_detector.severity, coalesce(f.subject, 'system'), f.dedup_key,
                f.txn_id, f.amount, coalesce(f.summary, p_detector.name), coalesce(f.evidence, '{}'))
        ON CONFLICT (detector, dedup_key) WHERE status <> 'resolved' DO NOTHING
        RETURNING * INTO ev;
        IF FOUND THEN
            seen := seen || ev.dedup_key;
            PERFORM monitor.log_transition(ev, 'opened', 'auto');
            opened := opened + 1;
        END IF;
    END LOOP;
    -- A condition that no longer holds resolves by itself.
    IF p_detector.kind = 'condition' THEN
        FOR ev IN
            UPDATE monitor.events e
               SET status = 'resolved', resolved_at = now(), resolved_by = 'auto'
             WHERE e.detector = p_detector.name AND e.status <> 'resolved' AND NOT (e.dedup_key = ANY (seen))
            RETURNING *
        LOOP
            PERFORM monitor.log_transition(ev, 'auto_resolved', 'auto');
            resolved := resolved + 1;
        END LOOP;
    END IF;
END
$$;

-- Run one detector in the caller's transaction; returns the number of events it opened.
CREATE OR REPLACE FUNCTION monitor.run_detector(p_name text, p_since timestamptz DEFAULT NULL)
RETURNS integer
-- jit off: detector queries are short index range scans; compiling them costs more than it saves
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp SET jit = off AS $$
DECLARE
    d monitor.detectors;
    v_started timestamptz := clock_timestamp();
    v_since timestamptz;
    v_findings monitor.finding[];
    r record;
    v_err text;
    v_detail text;
    v_seen xid8;
    v_snap_xmin xid8;
    v_fn regprocedure;
BEGIN
    SELECT * INTO d FROM monitor.detectors WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown detector %', p_name USING ERRCODE = '22023',
            HINT = 'monitorctl detectors list shows the registered detectors';
    END IF;
    -- one run at a time: the detector's row in run_locks, which no role but the owner can lock
    -- (an advisory lock could be taken by any user of the database, silencing the detector)
    INSERT INTO monitor.run_locks (detector) VALUES (p_name) ON CONFLICT (detector) DO NOTHING;
    PERFORM FROM monitor.run_locks l WHERE l.detector = p_name FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, error)
        VALUES (p_name, v_started, clock_timestamp(), 'skipped', 'another run of this detector was in progress');
        RETURN 0;
    END IF;
    v_since := monitor.run_since(d, p_since);
    -- what the previous run saw (not on a --since rescan; not across a billion transactions, far
    -- from xid wraparound), and this run's own mark, taken before it reads anything
    v_snap_xmin := pg_snapshot_xmin(pg_current_snapshot());
    IF p_since IS NULL THEN
        SELECT w.seen_xmin INTO v_seen FROM monitor.watermarks w WHERE w.detector = p_name;
        IF v_snap_xmin::text::bigint - v_seen::text::bigint > 1000000000 THEN
            v_seen := NULL;
        END IF;
    END IF;
    PERFORM set_config('monitor.seen_xmin', coalesce(v_seen::text, ''), true);
    BEGIN
        PERFORM set_config('lock_timeout', monitor.interval_ms(coalesce(d.params ->> 'lock_timeout', '5 seconds')), true);
        v_fn := to_regprocedure(d.function || '(jsonb,timestamp with time zone)');
        IF v_fn IS NULL THEN
            RAISE EXCEPTION 'detector function %(jsonb, timestamptz) does not exist', d.function
                USING HINT = 'register the function, or disable the detector';
        END IF;
        -- it runs with this function's owner's rights: only the function that was registered
        IF monitor.function_digest(v_fn) IS DISTINCT FROM d.function_digest THEN
            RAISE EXCEPTION 'detector function % changed since it was registered (its definition or owner): '
                            're-register it with monitorctl detectors add', d.function
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF d.prepare IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', d.prepare::regproc) USING d.params, v_since;
        END IF;
        EXECUTE format('SELECT coalesce(array_agg(f), ''{}'') FROM %s($1, $2) AS f', v_fn::regproc)
            INTO v_findings USING d.params, v_since;
        PERFORM set_config('monitor.seen_xmin', '', true);
        r := monitor.apply_findings(d, v_findings);
        INSERT INTO monitor.watermarks AS w (detector, high_water, seen_xmin) VALUES (p_name, now(), CASE WHEN p_since IS NULL THEN v_snap_xmin END)
        ON CONFLICT (detector) DO UPDATE
            SET high_water = greatest(w.high_water, excluded.high_water), updated_at = now(),
                seen_xmin = CASE WHEN p_since IS NULL THEN excluded.seen_xmin ELSE w.seen_xmin END;
        INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, since, events_opened,
                                           events_updated, events_resolved, rows_examined)
        VALUES (p_name, v_started, clock_timestamp(), 'ok', v_since, r.opened, r.updated, r.resolved,
                NULL);
        RETURN r.opened;
    EXCEPTION WHEN query_canceled OR OTHERS THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_detail = RETURNED_SQLSTATE;
        PERFORM set_config('monitor.seen_xmin', '', true);
        INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, since, error)
        VALUES (p_name, v_started, clock_timestamp(), 'error', v_since,
                format('%s (SQLSTATE %s)', v_err, v_detail));
        RETURN 0;
    END;
END
$$;
COMMENT ON FUNCTION monitor.run_detector(text, timestamptz) IS
    'Run one detector now in the caller''s transaction; returns the number of events opened. Errors and '
    'timeouts are recorded in monitor.detector_runs; a concurrent run of the same detector is skipped.';

-- Run every enabled detector, committing after each one. A procedure with a SET clause cannot
-- COMMIT, so it pins its search_path with set_config in each of its transactions instead.
-- PostgreSQL arms statement_timeout once per CALL: once it has fired, nothing bounds the detectors
-- after it, so the first cancelled run (a timeout or a cancel) ends the CALL and the detectors not
-- yet run are recorded as skipped, saying why.
CREATE OR REPLACE PROCEDURE monitor.run_all()
LANGUAGE plpgsql AS $$
DECLARE
    v_names text[];
    v_error text;
    i integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
    v_names := ARRAY(SELECT d.name FROM monitor.detectors d WHERE d.enabled ORDER BY d.name);
    FOR i IN 1 .. coalesce(array_length(v_names, 1), 0) LOOP
        PERFORM monitor.run_detector(v_names[i]);
        SELECT r.error INTO v_error FROM monitor.detector_runs r
         WHERE r.detector = v_names[i] ORDER BY r.run_id DESC LIMIT 1;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
        IF v_error LIKE '%(SQLSTATE 57014)' THEN
            INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, error)
            SELECT n, clock_timestamp(), clock_timestamp(), 'skipped',
                   format('not run: monitor.run_all() stopped after %s was cancelled (a statement timeout fires '
                          'once per CALL); call it again, or run detectors one at a time', v_names[i])
              FROM unnest(v_names[i + 1:]) n;
            COMMIT;
            RETURN;
        END IF;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE monitor.run_all() IS
    'Run every enabled detector, each committed on its own, under the caller''s statement_timeout; the '
    'first cancelled run ends the call and the rest are recorded as skipped.';
