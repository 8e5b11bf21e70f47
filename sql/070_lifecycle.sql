-- Lifecycle transitions made by people (CONTRACT §4, §6): acknowledge and resolve, all-or-nothing
-- over the ids, recorded in monitor.alert_history. Callable by monitor_operator.

-- Every id names an event that is not resolved, or nothing changes (the caller's statement fails).
CREATE OR REPLACE FUNCTION monitor.check_unresolved(p_event_ids bigint[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor AS $$
DECLARE
    bad bigint;
BEGIN
    SELECT id INTO bad FROM unnest(p_event_ids) id
     WHERE NOT EXISTS (SELECT FROM monitor.events e WHERE e.event_id = id) LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'event % does not exist', bad USING ERRCODE = 'no_data_found';
    END IF;
    SELECT e.event_id INTO bad FROM monitor.events e
     WHERE e.event_id = ANY (p_event_ids) AND e.status = 'resolved' ORDER BY e.event_id LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'event % is already resolved', bad USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION monitor.acknowledge(p_event_ids bigint[], p_actor text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor AS $$
DECLARE
    v_actor text := coalesce(nullif(p_actor, ''), session_user);
    ev monitor.events;
    n integer := 0;
BEGIN
    PERFORM monitor.check_unresolved(p_event_ids);
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
    n integer := 0;
BEGIN
    PERFORM monitor.check_unresolved(p_event_ids);
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
