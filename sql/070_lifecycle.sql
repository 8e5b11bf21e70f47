-- Lifecycle transitions made by people (docs/operations.md): acknowledge and resolve, all-or-nothing
-- over the ids, recorded in monitor.alert_history. Callable by monitor_operator.

-- Lock the events (in id order, so concurrent calls never deadlock), then check that every id
-- names an event that is not resolved, or nothing changes (the caller's statement fails). The lock
-- makes overlapping calls take turns: the second sees what the first committed.
CREATE OR REPLACE FUNCTION monitor.lock_unresolved(p_event_ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_found bigint[];
    v_resolved bigint[];
    bad bigint;
BEGIN
    IF p_event_ids IS NULL OR array_position(p_event_ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'event ids must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH locked AS (
        SELECT e.event_id, e.status FROM monitor.events e
         WHERE e.event_id = ANY (p_event_ids) ORDER BY e.event_id FOR UPDATE
    )
    SELECT coalesce(array_agg(l.event_id), '{}'),
           coalesce(array_agg(l.event_id ORDER BY l.event_id) FILTER (WHERE l.status = 'resolved'), '{}')
      INTO v_found, v_resolved FROM locked l;
    SELECT u.id INTO bad FROM unnest(p_event_ids) WITH ORDINALITY u(id, n)
     WHERE NOT u.id = ANY (v_found) ORDER BY u.n LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'event % does not exist', bad USING ERRCODE = 'no_data_found';
    END IF;
    IF cardinality(v_resolved) > 0 THEN
        RAISE EXCEPTION 'event % is already resolved', v_resolved[1] USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION monitor.acknowledge(p_event_ids bigint[], p_actor text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_actor text := coalesce(nullif(p_actor, ''), session_user);
    ev monitor.events;
    n integer := 0;
BEGIN
    PERFORM monitor.lock_unresolved(p_event_ids);
    FOR ev IN
        UPDATE monitor.events SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = v_actor,
                                  changed_at = clock_timestamp()
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_actor text := coalesce(nullif(p_actor, ''), session_user);
    ev monitor.events;
    n integer := 0;
BEGIN
    PERFORM monitor.lock_unresolved(p_event_ids);
    FOR ev IN
        UPDATE monitor.events SET status = 'resolved', resolved_at = now(), resolved_by = v_actor,
                                  resolution_note = p_note, changed_at = clock_timestamp()
         WHERE event_id = ANY (p_event_ids) AND status <> 'resolved'
        RETURNING *
    LOOP
        PERFORM monitor.log_transition(ev, 'resolved', v_actor, p_note);
        n := n + 1;
    END LOOP;
    UPDATE monitor.counters c SET value = c.value + n WHERE c.name = 'events_resolved';
    RETURN n;
END
$$;
COMMENT ON FUNCTION monitor.resolve(bigint[], text, text) IS
    'Resolve events (all or nothing): an unknown or already resolved id changes nothing and raises.';
