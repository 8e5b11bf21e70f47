-- Detector parameters: validation and the helpers detectors use to read them (CONTRACT §3).

-- Parameters every detector has, whatever its own.
CREATE OR REPLACE FUNCTION monitor.common_params(p_kind text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('timeout', '50 seconds', 'lock_timeout', '5 seconds')
        || CASE WHEN p_kind = 'finding'
                THEN jsonb_build_object('late_window', '5 minutes', 'first_lookback', '24 hours')
                ELSE '{}'::jsonb END
$$;

-- Read an interval parameter.
CREATE OR REPLACE FUNCTION monitor.param_interval(p_params jsonb, p_key text) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT (p_params ->> p_key)::interval $$;

-- Read a numeric parameter.
CREATE OR REPLACE FUNCTION monitor.param_numeric(p_params jsonb, p_key text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$ SELECT (p_params ->> p_key)::numeric $$;

-- Check a parameter set against its defaults: same keys, and each value of the default's type
-- (interval text for an interval, a JSON number for a number). Raises with the offending key.
CREATE OR REPLACE FUNCTION monitor.validate_params(p_detector text, p_defaults jsonb, p_params jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
    v jsonb;
    d jsonb;
    iv interval;
BEGIN
    IF jsonb_typeof(p_params) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'parameters of % must be a JSON object', p_detector USING ERRCODE = '22023';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(p_params) LOOP
        d := p_defaults -> k;
        IF d IS NULL THEN
            RAISE EXCEPTION 'unknown parameter "%" for detector % (known: %)', k, p_detector,
                (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_object_keys(p_defaults) x)
                USING ERRCODE = '22023';
        END IF;
        IF jsonb_typeof(d) = 'number' THEN
            IF jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric < 0 THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be a non-negative number, not %', k, p_detector, v
                    USING ERRCODE = '22023';
            END IF;
        ELSIF jsonb_typeof(d) = 'string' THEN
            IF jsonb_typeof(v) <> 'string' THEN
                RAISE EXCEPTION 'parameter "%" of detector % must be an interval such as ''5 minutes'', not %',
                    k, p_detector, v USING ERRCODE = '22023';
            END IF;
            BEGIN
                iv := (v #>> '{}')::interval;
            EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR syntax_error
                      OR invalid_parameter_value OR interval_field_overflow THEN
                RAISE EXCEPTION 'parameter "%" of detector %: % is not an interval (try ''5 seconds'')',
                    k, p_detector, v USING ERRCODE = '22023';
            END;
            IF iv < interval '0' THEN
                RAISE EXCEPTION 'parameter "%" of detector % must not be negative', k, p_detector
                    USING ERRCODE = '22023';
            END IF;
        END IF;
    END LOOP;
    RETURN p_params;
END
$$;
COMMENT ON FUNCTION monitor.validate_params(text, jsonb, jsonb) IS
    'Refuses unknown parameter keys and values of the wrong type; returns the parameters.';

-- Change parameters of a detector at runtime: merged over the current ones, validated.
CREATE OR REPLACE FUNCTION monitor.set_params(p_detector text, p_params jsonb) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, monitor AS $$
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
