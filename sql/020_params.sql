-- Detector parameters: validation and the helpers detectors use to read them (docs/detectors.md).

-- Parameters every detector has, whatever its own.
CREATE OR REPLACE FUNCTION monitor.common_params(p_kind text) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT jsonb_build_object('timeout', '50 seconds', 'lock_timeout', '5 seconds', 'exclude', '[]'::jsonb)
        || CASE WHEN p_kind = 'finding'
                THEN jsonb_build_object('late_window', '5 minutes', 'first_lookback', '24 hours')
                ELSE '{}'::jsonb END
$$;

-- Read an interval parameter.
CREATE OR REPLACE FUNCTION monitor.param_interval(p_params jsonb, p_key text) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$ SELECT (p_params ->> p_key)::interval $$;

-- The kind and valid range of a parameter: every value outside it would make runs fail or mean
-- nothing (a fraction of a count, a timeout that rounds to none, a window that overflows a
-- timestamp). '*' rules hold for every detector that has the key. A custom detector's own
-- parameters take their kind from their default: a number from 0 to 1e15, true or false, a list
-- of up to 10,000 subjects, or an interval from 0 to 100 years.
CREATE OR REPLACE FUNCTION monitor.param_rule(p_detector text, p_key text, p_default jsonb,
                                              OUT kind text, OUT lo text, OUT hi text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT r.kind, r.lo, r.hi FROM (VALUES
        (1, '*', 'timeout', 'interval', '1 second', '1 day'),
        (1, '*', 'lock_timeout', 'interval', '10 milliseconds', '1 hour'),
        (1, '*', 'late_window', 'interval', '0', '7 days'),
        (1, '*', 'first_lookback', 'interval', '0', '3660 days'),
        (1, 'balance_mismatch', 'tolerance', 'number', '0', '1000000000000'),
        (1, '*', 'full_pass', 'interval', '0', '30 days'),  -- 0: a full pass every run
        (1, '*', 'exclude', 'list', '0', '10000'),           -- subjects whose findings are dropped
        (1, 'consecutive_failures', 'count', 'integer', '1', '10000'),
        (1, 'consecutive_failures', 'window', 'interval', '0', '30 days'),
        (1, 'stuck_pending', 'age', 'interval', '1 second', '365 days'),
        (1, 'failure_rate', 'window', 'interval', '1 second', '30 days'),
        (1, 'failure_rate', 'min_volume', 'integer', '0', '1000000000'),
        (1, 'failure_rate', 'threshold', 'number', '0', '1'),
        (1, 'duplicate_scan', 'window', 'interval', '0', '1 day'),
        (1, 'duplicate_scan', 'min_count', 'integer', '2', '100000'),
        (1, 'concurrent_txn', 'window', 'interval', '0', '1 day'),
        (1, 'concurrent_txn', 'min_count', 'integer', '2', '100000'),
        (1, 'concurrent_txn', 'debits_only', 'boolean', '', ''),
        (1, 'volume_anomaly', 'baseline_days', 'integer', '7', '56'),
        (1, 'volume_anomaly', 'sigma', 'number', '0.1', '100'),
        (1, 'volume_anomaly', 'min_samples', 'integer', '1', '8'),
        (1, 'detector_health', 'overdue_factor', 'number', '1', '1000'),
        (2, '', '', 'number', '0', '1000000000000000'),
        (2, '', '', 'boolean', '', ''),
        (2, '', '', 'list', '0', '10000'),
        (2, '', '', 'interval', '0', '100 years')
    ) r(prio, detector, key, kind, lo, hi)
    WHERE (r.prio = 1 AND r.key = p_key AND r.detector IN (p_detector, '*'))
       OR (r.prio = 2 AND r.kind = CASE jsonb_typeof(p_default) WHEN 'number' THEN 'number'
                                                                 WHEN 'boolean' THEN 'boolean'
                                                                 WHEN 'array' THEN 'list' ELSE 'interval' END)
    ORDER BY r.prio
    LIMIT 1
$$;

-- Check a parameter set against its defaults: the same keys, and each value of its kind and in
-- its range (monitor.param_rule). Raises SQLSTATE 22023 naming the key and what it may be.
CREATE OR REPLACE FUNCTION monitor.validate_params(p_detector text, p_defaults jsonb, p_params jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    k text;
    v jsonb;
    rule record;
    iv interval;
    num numeric;
    what text;
BEGIN
    IF jsonb_typeof(p_params) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'parameters of % must be a JSON object', p_detector USING ERRCODE = '22023';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(p_params) LOOP
        IF NOT p_defaults ? k THEN
            RAISE EXCEPTION 'unknown parameter "%" for detector % (known: %)', k, p_detector,
                (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_object_keys(p_defaults) x)
                USING ERRCODE = '22023';
        END IF;
        rule := monitor.param_rule(p_detector, k, p_defaults -> k);
        what := CASE rule.kind WHEN 'interval' THEN format('an interval from %s to %s (such as ''5 minutes'')', rule.lo, rule.hi)
                               WHEN 'integer' THEN format('a whole number from %s to %s', rule.lo, rule.hi)
                               WHEN 'boolean' THEN 'true or false'
                               WHEN 'list' THEN format('a list of up to %s subjects (strings of 1 to 200 characters, '
                                                       'such as ["world"])', rule.hi)
                               ELSE format('a number from %s to %s', rule.lo, rule.hi) END;
        IF rule.kind = 'boolean' THEN
            IF jsonb_typeof(v) IS DISTINCT FROM 'boolean' THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be %, not %', k, p_detector, what, v
                    USING ERRCODE = '22023';
            END IF;
        ELSIF rule.kind = 'list' THEN
            IF jsonb_typeof(v) IS DISTINCT FROM 'array' OR jsonb_array_length(v) > rule.hi::integer
               OR EXISTS (SELECT FROM jsonb_array_elements(v) x
                           WHERE jsonb_typeof(x) <> 'string' OR length(x #>> '{}') NOT BETWEEN 1 AND 200) THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be %, not %', k, p_detector, what, v
                    USING ERRCODE = '22023';
            END IF;
        ELSIF rule.kind = 'interval' THEN
            iv := NULL;
            IF jsonb_typeof(v) = 'string' THEN
                BEGIN
                    iv := (v #>> '{}')::interval;
                EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR syntax_error
                          OR invalid_parameter_value OR interval_field_overflow OR numeric_value_out_of_range THEN
                    iv := NULL;
                END;
            END IF;
            IF iv IS NULL OR iv < rule.lo::interval OR iv > rule.hi::interval THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be %, not %', k, p_detector, what, v
                    USING ERRCODE = '22023';
            END IF;
        ELSE
            num := CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric END;
            IF num IS NULL OR num < rule.lo::numeric OR num > rule.hi::numeric
               OR (rule.kind = 'integer' AND v::text !~ '^-?[0-9]+$') THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be %, not %', k, p_detector, what, v
                    USING ERRCODE = '22023';
            END IF;
        END IF;
    END LOOP;
    RETURN p_params;
END
$$;
COMMENT ON FUNCTION monitor.validate_params(text, jsonb, jsonb) IS
    'Refuses unknown parameter keys, values of the wrong kind and values out of range; returns the parameters.';

-- Change parameters of a detector at runtime: merged over the current ones, validated.
CREATE OR REPLACE FUNCTION monitor.set_params(p_detector text, p_params jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    merged jsonb;
BEGIN
    SELECT monitor.validate_params(name, param_defaults, params || p_params) INTO merged
    FROM monitor.detectors WHERE name = p_detector;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown detector %', p_detector USING ERRCODE = '22023',
            HINT = 'monitorctl detectors list shows the registered detectors';
    END IF;
    UPDATE monitor.detectors SET params = merged, updated_at = now() WHERE name = p_detector;
    RETURN merged;
END
$$;
COMMENT ON FUNCTION monitor.set_params(text, jsonb) IS
    'Merge, validate and store parameters of one detector; takes effect at its next run.';
