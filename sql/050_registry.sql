-- The detector registry: built-in rows (defaults never overwrite a user's changes on re-install)
-- and monitor.register_detector for custom detectors (docs/custom-detectors.md).

-- The seconds of an 'N seconds' schedule (1 to 59, pg_cron 1.5+), else NULL: the one pattern of
-- such schedules, which monitorctl asks for too (monitorctl/schedule.py) instead of keeping its own.
CREATE OR REPLACE FUNCTION monitor.schedule_seconds(p_schedule text) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT CASE WHEN p_schedule ~ '^[ \t]*([1-9]|[1-5][0-9])[ \t]+seconds?[ \t]*$'
                THEN substring(p_schedule from '[0-9]+')::integer END
$$;

CREATE OR REPLACE FUNCTION monitor.valid_schedule(p_schedule text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    -- five cron fields, a macro, or 1-59 seconds (pg_cron 1.5+); spaces and tabs only, never a newline
    SELECT p_schedule ~ '^[ \t]*[0-9*,/-]+([ \t]+[0-9A-Za-z*,/-]+){4}[ \t]*$'
        OR p_schedule ~ '^[ \t]*@(yearly|annually|monthly|weekly|daily|hourly|reboot)[ \t]*$'
        OR monitor.schedule_seconds(p_schedule) IS NOT NULL
$$;

-- A detector function runs inside monitor.run_detector, with the rights of monitor's owner (pg_cron
-- runs it as the installer): only a function nobody else can change or redirect is accepted
-- (monitor.detector_function_problem, docs/security.md). Returns the function.
CREATE OR REPLACE FUNCTION monitor.check_detector_function(p_function text) RETURNS regprocedure
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    fn regprocedure;
    problem text;
BEGIN
    IF p_function IS NULL OR p_function !~ '^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$' THEN
        RAISE EXCEPTION 'detector function must be a schema-qualified name such as myschema.detect_x, not %',
            coalesce(p_function, 'NULL') USING ERRCODE = '22023';
    END IF;
    fn := to_regprocedure(p_function || '(jsonb,timestamp with time zone)');
    IF fn IS NULL THEN
        RAISE EXCEPTION 'function %(params jsonb, since timestamptz) does not exist', p_function
            USING ERRCODE = '22023', HINT = 'create it first: it must return SETOF monitor.finding';
    END IF;
    problem := monitor.detector_function_problem(fn);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = '22023';
    END IF;
    RETURN fn;
END
$$;

-- Register (or re-register) a custom detector. Its parameters are the common ones plus p_params.
CREATE OR REPLACE FUNCTION monitor.register_detector(
    p_name text, p_function text, p_severity text, p_kind text,
    p_schedule text DEFAULT '* * * * *', p_params jsonb DEFAULT '{}', p_description text DEFAULT '')
RETURNS monitor.detectors
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    defaults jsonb;
    fn regprocedure;
    result monitor.detectors;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'detector name must be lower-case letters, digits and _, not %', p_name
            USING ERRCODE = '22023';
    END IF;
    IF p_severity NOT IN ('critical', 'high', 'medium', 'low') OR p_severity IS NULL THEN
        RAISE EXCEPTION 'severity must be one of critical, high, medium, low, not %', p_severity USING ERRCODE = '22023';
    END IF;
    IF p_kind NOT IN ('finding', 'condition') OR p_kind IS NULL THEN
        RAISE EXCEPTION 'kind must be finding or condition, not %', p_kind USING ERRCODE = '22023';
    END IF;
    IF p_schedule IS NULL OR NOT monitor.valid_schedule(p_schedule) THEN
        RAISE EXCEPTION 'schedule % is not a cron schedule such as ''* * * * *''', p_schedule USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM monitor.detectors WHERE name = p_name AND builtin) THEN
        RAISE EXCEPTION 'detector % is built in and cannot be replaced', p_name USING ERRCODE = '22023';
    END IF;
    fn := monitor.check_detector_function(p_function);
    defaults := monitor.common_params(p_kind) || coalesce(p_params, '{}');
    PERFORM monitor.validate_params(p_name, defaults, defaults);
    INSERT INTO monitor.detectors AS d (name, severity, kind, schedule, params, param_defaults, description,
                                        function, function_digest, builtin)
    VALUES (p_name, p_severity, p_kind, trim(p_schedule), defaults, defaults, coalesce(p_description, ''),
            p_function, monitor.function_digest(fn), false)
    ON CONFLICT (name) DO UPDATE
        SET severity = excluded.severity, kind = excluded.kind, schedule = excluded.schedule,
            params = excluded.params, param_defaults = excluded.param_defaults,
            description = excluded.description, function = excluded.function,
            function_digest = excluded.function_digest, updated_at = now()
    RETURNING * INTO result;
    INSERT INTO monitor.run_locks (detector) VALUES (p_name) ON CONFLICT (detector) DO NOTHING;
    RETURN result;
END
$$;
COMMENT ON FUNCTION monitor.register_detector(text, text, text, text, text, jsonb, text) IS
    'Register a custom detector: FUNCTION(params jsonb, since timestamptz) RETURNS SETOF monitor.finding. '
    'Run monitorctl install (or monitorctl detectors enable NAME) to schedule it in pg_cron.';

-- Remove a custom detector (its events stay until pruned).
CREATE OR REPLACE FUNCTION monitor.unregister_detector(p_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_builtin boolean;
BEGIN
    SELECT builtin INTO v_builtin FROM monitor.detectors WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown detector % (known: %)', p_name,
            (SELECT coalesce(string_agg(name, ', ' ORDER BY name), 'none') FROM monitor.detectors)
            USING ERRCODE = '22023';
    ELSIF v_builtin THEN
        RAISE EXCEPTION 'detector % is built in: disable it instead', p_name USING ERRCODE = '22023';
    END IF;
    DELETE FROM monitor.detectors WHERE name = p_name;
    DELETE FROM monitor.watermarks WHERE detector = p_name;
    DELETE FROM monitor.run_locks WHERE detector = p_name;
END
$$;

-- Enabling a detector restarts its overdue clock (detector_health counts from enabled_at), and so
-- does giving it a pg_cron job: a detector installed with --no-schedule and scheduled an hour later
-- is not overdue before its first tick.
CREATE OR REPLACE FUNCTION monitor.detectors_touch() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    IF (NEW.enabled AND NOT OLD.enabled) OR (NEW.scheduled AND NOT coalesce(OLD.scheduled, false)) THEN
        NEW.enabled_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS detectors_touch ON monitor.detectors;
CREATE TRIGGER detectors_touch BEFORE UPDATE ON monitor.detectors
    FOR EACH ROW EXECUTE FUNCTION monitor.detectors_touch();

-- Built-in detectors. On re-install only the code-owned columns change; enabled, severity,
-- schedule and parameter values a user set are kept, new parameters get their defaults.
WITH builtin (name, severity, kind, schedule, prepare, params, description) AS (VALUES
    ('failed_debit', 'critical', 'finding', '* * * * *', NULL,
     '{}'::jsonb,
     'A failed transaction that still took money (its balances, its posted mark, or its account''s balance show it).'),
    ('balance_chain', 'critical', 'finding', '* * * * *', NULL,
     '{}'::jsonb,
     'A ledger row whose balances do not add up (before + amount <> after) or do not follow the previous row''s.'),
    ('balance_mismatch', 'critical', 'condition', '* * * * *', 'monitor.prepare_balance_mismatch',
     '{"tolerance": 0.01, "full_pass": "1 hour"}',
     'An account balance that differs from opening balance + the sum of its successful transactions.'),
    ('consecutive_failures', 'high', 'finding', '* * * * *', NULL,
     '{"count": 3, "window": "10 minutes"}',
     'A run of consecutive failed transactions on one account (pending ones skipped) within the window.'),
    ('negative_balance', 'high', 'condition', '* * * * *', NULL,
     '{"full_pass": "1 hour", "late_window": "5 minutes"}',
     'An account whose balance is below zero.'),
    ('stuck_pending', 'high', 'condition', '* * * * *', NULL,
     '{"age": "10 minutes", "full_pass": "1 hour", "late_window": "5 minutes"}',
     'A transaction still pending longer than the age.'),
    ('failure_rate', 'medium', 'condition', '* * * * *', 'monitor.prepare_failure_rate',
     '{"window": "15 minutes", "min_volume": 20, "threshold": 0.05, "full_pass": "1 hour",
       "late_window": "5 minutes"}',
     'The share of failed transactions over the trailing window is above the threshold.'),
    ('duplicate_scan', 'medium', 'finding', '* * * * *', NULL,
     '{"window": "5 seconds", "min_count": 2}',
     'A card scanned repeatedly, each scan within the window of the previous one.'),
    ('concurrent_txn', 'medium', 'finding', '* * * * *', NULL,
     '{"window": "2 seconds", "min_count": 2, "debits_only": true}',
     'Transactions on one account in a burst, each within the window of the previous one (by default its debits).'),
    ('volume_anomaly', 'medium', 'condition', '5 * * * *', 'monitor.prepare_volume_anomaly',
     '{"baseline_days": 28, "sigma": 3, "min_samples": 2}',
     'The last complete hour''s transaction count is far from the same hour of the week in the baseline.'),
    ('detector_health', 'high', 'condition', '* * * * *', NULL,
     '{"overdue_factor": 3}',
     'A scheduled detector whose latest run failed or that has not completed a run for too long.')
)
INSERT INTO monitor.detectors AS d (name, severity, kind, schedule, params, param_defaults, description,
                                    function, function_digest, prepare, builtin)
SELECT b.name, b.severity, b.kind, b.schedule, monitor.common_params(b.kind) || b.params,
       monitor.common_params(b.kind) || b.params, b.description, 'monitor.detect_' || b.name,
       monitor.function_digest(('monitor.detect_' || b.name || '(jsonb,timestamptz)')::regprocedure), b.prepare, true
FROM builtin b
ON CONFLICT (name) DO UPDATE
    SET kind = excluded.kind, description = excluded.description, function = excluded.function,
        function_digest = excluded.function_digest,
        prepare = excluded.prepare, builtin = true, param_defaults = excluded.param_defaults,
        params = excluded.param_defaults
                 || (SELECT coalesce(jsonb_object_agg(k, v), '{}') FROM jsonb_each(d.params) AS p(k, v)
                     WHERE excluded.param_defaults ? k);

INSERT INTO monitor.run_locks (detector) SELECT name FROM monitor.detectors ON CONFLICT (detector) DO NOTHING;
