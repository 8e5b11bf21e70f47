-- What the operator's commands need beyond the runner and the lifecycle functions: changing a
-- detector's parameters, schedule, severity and enabled flag in one validated step (docs/cli.md).

-- Change one detector. NULL arguments leave that setting as it is. Parameters are merged over the
-- current ones and validated (monitor.validate_params); a bad value raises SQLSTATE 22023 naming it.
-- Scheduling follows in pg_cron when the CLI (or `monitorctl install`) syncs the jobs.
CREATE OR REPLACE FUNCTION monitor.configure_detector(
    p_name text, p_params jsonb DEFAULT NULL, p_schedule text DEFAULT NULL, p_severity text DEFAULT NULL,
    p_enabled boolean DEFAULT NULL)
RETURNS monitor.detectors
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    d monitor.detectors;
BEGIN
    SELECT * INTO d FROM monitor.detectors WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown detector % (known: %)', p_name,
            (SELECT coalesce(string_agg(name, ', ' ORDER BY name), 'none') FROM monitor.detectors)
            USING ERRCODE = '22023';
    END IF;
    IF p_severity IS NOT NULL AND p_severity NOT IN ('critical', 'high', 'medium', 'low') THEN
        RAISE EXCEPTION 'severity must be one of critical, high, medium, low, not %', p_severity
            USING ERRCODE = '22023';
    END IF;
    IF p_schedule IS NOT NULL AND NOT monitor.valid_schedule(p_schedule) THEN
        RAISE EXCEPTION 'schedule % is not a cron schedule such as ''* * * * *'', ''*/5 * * * *'' or ''30 seconds''',
            p_schedule USING ERRCODE = '22023';
    END IF;
    IF p_params IS NOT NULL AND p_params <> '{}'::jsonb THEN
        PERFORM monitor.set_params(p_name, p_params);
    END IF;
    UPDATE monitor.detectors
       SET schedule = coalesce(trim(p_schedule), schedule),
           severity = coalesce(p_severity, severity),
           enabled = coalesce(p_enabled, enabled),
           enabled_at = CASE WHEN p_enabled AND NOT enabled THEN now() ELSE enabled_at END,
           updated_at = now()
     WHERE name = p_name
    RETURNING * INTO d;
    RETURN d;
END
$$;
COMMENT ON FUNCTION monitor.configure_detector(text, jsonb, text, text, boolean) IS
    'Change a detector''s parameters (merged, validated), schedule, severity or enabled flag; NULL keeps a '
    'setting. monitorctl detectors enable|disable|set call it, then bring pg_cron''s jobs in line.';
