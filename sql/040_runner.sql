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
-- finished when that run took its snapshot, i.e. older than its snapshot's xmin. The runner passes
-- that xmin to the detector as the parameter `seen` (a pg_snapshot_xmin, as text); a built-in
-- detector examines a row of its late window only when age(row_xmin) <= seen_age(params), so a
-- stream of rows is read about once rather than once per minute of the late window. Without
-- `seen` (a first run, a --since rescan, a full pass, a call by hand in psql) every row from
-- `since` on is examined: a detector is a function of its arguments alone.
CREATE OR REPLACE FUNCTION monitor.seen_age(p_params jsonb) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT coalesce(age(((nullif(p_params ->> 'seen', '')::xid8::text::bigint % 4294967296)::text)::xid),
                    2147483647)
$$;
-- What 0.1.0's detectors called (the run state was then a session setting): the largest age, so that
-- a custom detector written for 0.1.0 stays correct and examines every row of its late window.
CREATE OR REPLACE FUNCTION monitor.seen_age() RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$ SELECT 2147483647 $$;
COMMENT ON FUNCTION monitor.seen_age() IS
    'Deprecated: use monitor.seen_age(params). The largest age: every row from since is examined.';
COMMENT ON FUNCTION monitor.seen_age(jsonb) IS
    'The age of the newest transaction whose rows the previous run saw (params ->> ''seen''); the largest age without it.';

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

-- Fold the findings of one run into monitor.events, in one statement whatever their number (an
-- outage fails 100,000 payments at once): each finding's open event is looked up by its own key,
-- else by a key its evidence lists in member_keys (a growing burst); matched events are updated
-- (occurrences counts the findings that saw them), the others opened (a finding already resolved by
-- a person is not opened again), and for a condition every open event no finding saw is resolved.
-- Every transition is logged in alert_history and announced with NOTIFY. Returns the counts.
CREATE OR REPLACE FUNCTION monitor.apply_findings(p_detector monitor.detectors, p_findings monitor.finding[],
                                                  OUT opened integer, OUT updated integer, OUT resolved integer)
-- a custom plan per run: the planner sees how many findings there are; a storm's sorts in memory
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp SET plan_cache_mode = force_custom_plan
                 SET work_mem = '64MB' AS $$
BEGIN
    opened := 0; updated := 0; resolved := 0;
    IF p_detector.kind = 'finding' AND coalesce(cardinality(p_findings), 0) = 0 THEN
        RETURN;  -- the usual quiet minute: nothing to plan
    END IF;
    WITH f AS (                    -- the findings, in order; the last of several on one event wins
        SELECT u.ord, u.subject, u.dedup_key, u.txn_id, u.amount, u.summary, u.evidence,
               ARRAY[u.dedup_key] || coalesce(ARRAY(SELECT jsonb_array_elements_text(u.evidence -> 'member_keys')
                                                     WHERE jsonb_typeof(u.evidence -> 'member_keys') = 'array'),
                                               '{}') AS keys
          FROM unnest(p_findings) WITH ORDINALITY AS u(subject, dedup_key, txn_id, amount, summary, evidence, ord)
         WHERE u.dedup_key IS NOT NULL
    ), fm AS (                     -- each finding's open event, probed by key: its own key first, else the
        SELECT f.*,                -- oldest of its member keys'; and whether its own key was ever recorded
               CASE WHEN own.active THEN own.event_id ELSE member.event_id END AS event_id,
               CASE WHEN own.active THEN own.severity ELSE member.severity END AS old_severity,
               own.event_id IS NOT NULL AS recorded
          FROM f
          LEFT JOIN LATERAL (
                   SELECT e.event_id, e.severity, e.status <> 'resolved' AS active FROM monitor.events e
                    WHERE e.detector = p_detector.name AND e.dedup_key = f.dedup_key
                    ORDER BY e.status <> 'resolved' DESC
                    LIMIT 1) own ON true
          LEFT JOIN LATERAL (
                   SELECT e.event_id, e.severity
                     FROM unnest(f.keys[2:]) AS kk(key)
                     CROSS JOIN LATERAL (
                         SELECT e.event_id, e.severity FROM monitor.events e
                          WHERE e.detector = p_detector.name AND e.dedup_key = kk.key AND e.status <> 'resolved') e
                    WHERE own.active IS NOT TRUE
                    ORDER BY e.event_id
                    LIMIT 1) member ON true
    ), hit AS (                    -- per matched event: how many findings saw it, and the last one
        SELECT DISTINCT ON (x.event_id) x.*, count(*) OVER (PARTITION BY x.event_id) AS n
          FROM fm x
         WHERE x.event_id IS NOT NULL
         ORDER BY x.event_id, x.ord DESC
    ), upd AS (
        UPDATE monitor.events e
           SET last_seen = now(), occurrences = e.occurrences + h.n, evidence = h.evidence,
               summary = coalesce(h.summary, e.summary), amount = h.amount,
               txn_id = coalesce(e.txn_id, h.txn_id), subject = coalesce(h.subject, e.subject),
               severity = p_detector.severity,
               -- seen again, it changes for people only when what they are shown changes
               changed_at = CASE WHEN e.severity <> p_detector.severity OR e.amount IS DISTINCT FROM h.amount
                                      OR (e.kind = 'finding' AND e.summary IS DISTINCT FROM coalesce(h.summary, e.summary))
                                 THEN clock_timestamp() ELSE e.changed_at END
          FROM hit h
         WHERE e.event_id = h.event_id AND e.status <> 'resolved'
        RETURNING e.event_id, e.detector, e.severity, e.subject, e.summary, h.old_severity, h.n
    ), fresh AS (                  -- unmatched findings; a finding is recorded once, even if resolved
        SELECT x.*, count(*) OVER (PARTITION BY x.dedup_key) AS n,
               row_number() OVER (PARTITION BY x.dedup_key ORDER BY x.ord DESC) AS nth
          FROM fm x
         WHERE x.event_id IS NULL
           AND NOT (p_detector.kind = 'finding' AND (x.recorded OR (cardinality(x.keys) > 1 AND EXISTS (
                    SELECT FROM monitor.events e WHERE e.detector = p_detector.name AND e.dedup_key = ANY (x.keys[2:])))))
    ), ins AS (                    -- (the run lock keeps every other writer of this detector's events out)
        INSERT INTO monitor.events (detector, kind, severity, subject, dedup_key, txn_id, amount, summary,
                                    evidence, occurrences)
        SELECT p_detector.name, p_detector.kind, p_detector.severity, coalesce(x.subject, 'system'), x.dedup_key,
               x.txn_id, x.amount, coalesce(x.summary, p_detector.name), coalesce(x.evidence, '{}'), x.n
          FROM fresh x
         WHERE x.nth = 1
        RETURNING event_id, detector, severity, subject, summary
    ), gone AS (                   -- a condition that no longer holds resolves by itself
        UPDATE monitor.events e
           SET status = 'resolved', resolved_at = now(), resolved_by = 'auto', changed_at = clock_timestamp()
         WHERE p_detector.kind = 'condition' AND e.detector = p_detector.name AND e.status <> 'resolved'
           AND e.event_id NOT IN (SELECT x.event_id FROM fm x WHERE x.event_id IS NOT NULL)  -- hashed
        RETURNING e.event_id, e.detector, e.severity, e.subject, e.summary
    ), transitions AS (
        SELECT u.event_id, 'severity_changed' AS transition, format('severity is now %s', u.severity) AS note,
               u.detector, u.severity, u.subject, u.summary
          FROM upd u WHERE u.old_severity <> u.severity
        UNION ALL
        SELECT i.event_id, 'opened', NULL, i.detector, i.severity, i.subject, i.summary FROM ins i
        UNION ALL
        SELECT g.event_id, 'auto_resolved', NULL, g.detector, g.severity, g.subject, g.summary FROM gone g
    ), logged AS (
        INSERT INTO monitor.alert_history (event_id, transition, actor, note, detector, severity, subject, summary)
        SELECT t.event_id, t.transition, 'auto', t.note, t.detector, t.severity, t.subject, t.summary
          FROM transitions t
        RETURNING event_id, transition, detector, severity
    ), announced AS (
        SELECT count(pg_notify('monitor_events', json_build_object(
                   'event_id', l.event_id, 'detector', l.detector, 'severity', l.severity,
                   'transition', l.transition)::text)) AS n
          FROM logged l
    )
    SELECT (SELECT count(*) FROM ins), coalesce((SELECT sum(u.n) FROM upd u), 0), (SELECT count(*) FROM gone)
      INTO opened, updated, resolved
      FROM announced;
    IF resolved > 0 THEN
        UPDATE monitor.counters c SET value = c.value + resolved WHERE c.name = 'events_resolved';
    END IF;
    -- a storm changes what the table holds faster than autovacuum looks: the next run (which looks up
    -- each finding's event by key) must not be planned from statistics that say the detector has none
    IF opened + resolved >= 1000 THEN
        ANALYZE monitor.events;
    END IF;
END
$$;

-- Run one detector in the caller's transaction; returns the number of events it opened.
-- p_since (a rescan or backfill) examines rows from that time on, and p_until (with p_since) only those
-- before it: a backfill runs a long window as slices, each in a transaction and a timeout of its own.
-- The built-in detectors read the bound as the parameter `until`.
CREATE OR REPLACE FUNCTION monitor.run_detector(p_name text, p_since timestamptz DEFAULT NULL,
                                                p_until timestamptz DEFAULT NULL)
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
    v_problem text;
    v_full boolean;
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
    IF p_since > now() THEN  -- '-infinity' is all history; a time to come would examine nothing
        RAISE EXCEPTION 'since must not be in the future, not %', p_since USING ERRCODE = '22023';
    END IF;
    IF p_until IS NOT NULL AND (p_since IS NULL OR p_until <= p_since) THEN
        RAISE EXCEPTION 'until (%) needs a since before it', p_until USING ERRCODE = '22023';
    END IF;
    IF p_until IS NOT NULL THEN
        d.params := d.params || jsonb_build_object('until', p_until);
    END IF;
    v_since := monitor.run_since(d, p_since);
    -- what the previous run saw (not on a --since rescan; not across a billion transactions, far
    -- from xid wraparound; not when a full pass is due), and this run's own mark, taken before it
    -- reads anything. A detector with a `full_pass` parameter examines everything that often.
    v_snap_xmin := pg_snapshot_xmin(pg_current_snapshot());
    v_full := d.params ? 'full_pass' AND NOT EXISTS (
        SELECT FROM monitor.watermarks w
         WHERE w.detector = p_name || '.full' AND w.high_water > now() - monitor.param_interval(d.params, 'full_pass'));
    IF p_since IS NULL AND NOT v_full THEN
        SELECT w.seen_xmin INTO v_seen FROM monitor.watermarks w WHERE w.detector = p_name;
        IF v_snap_xmin::text::bigint - v_seen::text::bigint > 1000000000 THEN
            v_seen := NULL;
        END IF;
    END IF;
    IF v_seen IS NOT NULL THEN
        d.params := d.params || jsonb_build_object('seen', v_seen::text);
    END IF;
    BEGIN
        PERFORM set_config('lock_timeout', monitor.interval_ms(coalesce(d.params ->> 'lock_timeout', '5 seconds')), true);
        v_fn := to_regprocedure(d.function || '(jsonb,timestamp with time zone)');
        IF v_fn IS NULL THEN
            RAISE EXCEPTION 'detector function %(jsonb, timestamptz) does not exist', d.function
                USING HINT = 'register the function, or disable the detector';
        END IF;
        -- it runs with monitor's owner's rights: only the function that was registered, still one that
        -- nobody else can change or redirect, reading sources nobody else can change (docs/security.md)
        IF d.function_digest IS NULL THEN
            RAISE EXCEPTION 'detector function % was registered by a monitorctl that did not yet check what it runs: '
                            're-register it with monitorctl detectors add (docs/security.md)', d.function
                USING ERRCODE = 'insufficient_privilege';
        ELSIF monitor.function_digest(v_fn) IS DISTINCT FROM d.function_digest THEN
            RAISE EXCEPTION 'detector function % changed since it was registered (its definition or owner): '
                            're-register it with monitorctl detectors add', d.function
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        v_problem := CASE WHEN NOT d.builtin THEN monitor.detector_function_problem(v_fn) END;
        IF v_problem IS NULL THEN
            -- held to the end of the run: nobody can replace what is behind the views meanwhile
            LOCK TABLE monitor.src_accounts, monitor.src_transactions, monitor.src_scans IN ACCESS SHARE MODE;
            v_problem := monitor.sources_problem();
        END IF;
        IF v_problem IS NOT NULL THEN
            RAISE EXCEPTION 'refused to run %: %', p_name, v_problem USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF d.prepare IS NOT NULL THEN
            EXECUTE format('SELECT %s($1, $2)', d.prepare::regproc) USING d.params, v_since;
        END IF;
        -- the subjects the `exclude` parameter names are dropped (a condition's open event on one resolves)
        EXECUTE format('SELECT coalesce(array_agg(f), ''{}'') FROM %s($1, $2) AS f
                         WHERE NOT coalesce(f.subject = ANY ($3), false)', v_fn::regproc)
            INTO v_findings
            USING d.params, v_since, ARRAY(SELECT jsonb_array_elements_text(coalesce(d.params -> 'exclude', '[]')));
        r := monitor.apply_findings(d, v_findings);
        -- a run without `seen` examined everything: the next full pass is due full_pass from now
        IF d.params ? 'full_pass' AND NOT d.params ? 'seen' THEN
            INSERT INTO monitor.watermarks AS w (detector, high_water) VALUES (p_name || '.full', now())
            ON CONFLICT (detector) DO UPDATE SET high_water = excluded.high_water, updated_at = now();
        END IF;
        -- a rescan from an earlier time (p_since) leaves the watermark alone: it never moves the
        -- regular runs past rows they have not examined
        IF p_since IS NULL THEN
            INSERT INTO monitor.watermarks AS w (detector, high_water, seen_xmin) VALUES (p_name, now(), v_snap_xmin)
            ON CONFLICT (detector) DO UPDATE
                SET high_water = greatest(w.high_water, excluded.high_water), updated_at = now(),
                    seen_xmin = excluded.seen_xmin;
        END IF;
        INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, since, events_opened,
                                           events_updated, events_resolved, rows_examined)
        VALUES (p_name, v_started, clock_timestamp(), 'ok', v_since, r.opened, r.updated, r.resolved,
                NULL);
        RETURN r.opened;
    EXCEPTION WHEN query_canceled OR OTHERS THEN
        GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT, v_detail = RETURNED_SQLSTATE;
        INSERT INTO monitor.detector_runs (detector, started_at, finished_at, status, since, error)
        VALUES (p_name, v_started, clock_timestamp(), 'error', v_since,
                format('%s (SQLSTATE %s)', v_err, v_detail));
        RETURN 0;
    END;
END
$$;
COMMENT ON FUNCTION monitor.run_detector(text, timestamptz, timestamptz) IS
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
