-- Lifecycle transitions made by people (CONTRACT §4, §6): acknowledge and resolve, all-or-nothing
-- over the ids, recorded in monitor.alert_history. Callable by monitor_operator.

CREATE OR REPLACE FUNCTION monitor.acknowledge(p_event_ids bigint[], p_actor text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor AS $$
DECLARE
    v_actor text := coalesce(nullif(p_actor, ''), session_user);
    ev monitor.events;
    missing bigint;
    n integer := 0;
BEGIN
    SELECT id INTO missing FROM unnest(p_event_ids) id
     WHERE NOT EXISTS (SELECT FROM monitor.events e WHERE e.event_id = id) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'event % does not exist', missing USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO ev FROM monitor.events WHERE event_id = ANY (p_event_ids) AND status = 'resolved' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event % is already resolved', ev.event_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR ev IN
        UPDATE monitor.events SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = v_actor
         WHERE event_id = ANY (p_event_ids) AND status = 'open'
        RETURNING *
    LOOP
        PERFORM monitor.log_transition(ev, 'acknowledged', v_actor);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION monitor.acknowledge(bigint[], text) IS
    'Acknowledge open events (all or nothing); already acknowledged ones are left as they are.';

CREATE OR REPLACE FUNCTION monitor.resolve(p_event_ids bigint[], p_note text DEFAULT NULL,
                                           p_actor text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor AS $$
DECLARE
    v_actor text := coalesce(nullif(p_actor, ''), session_user);
    ev monitor.events;
    missing bigint;
    n integer := 0;
BEGIN
    SELECT id INTO missing FROM unnest(p_event_ids) id
     WHERE NOT EXISTS (SELECT FROM monitor.events e WHERE e.event_id = id) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'event % does not exist', missing USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO ev FROM monitor.events WHERE event_id = ANY (p_event_ids) AND status = 'resolved' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event % is already resolved', ev.event_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR ev IN
        UPDATE monitor.events SET status = 'resolved', resolved_at = now(), resolved_by = v_actor,
                                  resolution_note = p_note
         WHERE event_id = ANY (p_event_ids)
        RETURNING *
    LOOP
        PERFORM monitor.log_transition(ev, 'resolved', v_actor, p_note);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION monitor.resolve(bigint[], text, text) IS
    'Resolve events (all or nothing): an unknown or already resolved id changes nothing and raises.';
