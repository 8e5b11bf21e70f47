-- Notifications (docs/notifications.md): routing, silences and the outbox the delivery worker
-- (`monitorctl notify`) drains. Nothing is sent from inside PostgreSQL: a transition enqueues its
-- deliveries in its own transaction, and the worker claims them under a lease, sends them and
-- records every attempt here.

-- Severities in order, for "at least this severe".
CREATE OR REPLACE FUNCTION monitor.severity_rank(p_severity text) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT CASE p_severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 END
$$;

-- A shell-style pattern (* any text, ? one character) as a LIKE pattern.
CREATE OR REPLACE FUNCTION monitor.glob_like(p_glob text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT replace(replace(replace(replace(replace(p_glob, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
$$;

-- The routes an event's transitions go to: those that match it, in position order, up to and
-- including the first matching route without continue_after.
CREATE OR REPLACE FUNCTION monitor.matching_routes(p_detector text, p_severity text, p_subject text)
RETURNS SETOF monitor.routes
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT (m.r).* FROM (
        SELECT r, bool_or(NOT r.continue_after) OVER (ORDER BY r.position, r.route_id
                                                      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS stopped
          FROM monitor.routes r
         WHERE monitor.severity_rank(p_severity) >= monitor.severity_rank(r.min_severity)
           AND (r.detectors IS NULL OR p_detector = ANY (r.detectors))
           AND (r.subject_glob IS NULL OR p_subject LIKE monitor.glob_like(r.subject_glob))
    ) m
    WHERE m.stopped IS NOT TRUE
    ORDER BY (m.r).position, (m.r).route_id
$$;

-- The active silence that holds back an event's transitions, if any.
CREATE OR REPLACE FUNCTION monitor.active_silence(p_detector text, p_subject text) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT s.silence_id FROM monitor.silences s
     WHERE s.starts_at <= now() AND now() < s.ends_at
       AND (s.detector IS NULL OR s.detector = p_detector)
       AND (s.subject_glob IS NULL OR p_subject LIKE monitor.glob_like(s.subject_glob))
     ORDER BY s.silence_id
     LIMIT 1
$$;

-- The outbox, filled in the transaction of the transitions themselves: one delivery per transition
-- and matching route (resolutions only where the route sends them). A follow-up (severity changed,
-- acknowledged, resolved) also goes to every receiver already told of the event, whatever the routes
-- say now: a pager that was told of the opening hears of the resolution even after the event's
-- severity dropped below its route. While a silence holds the event, its openings and severity
-- changes are suppressed (and recorded in the history); its follow-ups still reach those already
-- told, so no incident is left open elsewhere. A statement-level trigger: a storm's 100,000
-- transitions are routed in one statement. With no route configured it costs one probe.
CREATE OR REPLACE FUNCTION monitor.enqueue_deliveries() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    -- (its own 'suppressed' rows come back here, and stop here)
    IF NOT EXISTS (SELECT FROM monitor.routes)
       OR NOT EXISTS (SELECT FROM added h WHERE h.transition IN ('opened', 'severity_changed', 'acknowledged',
                                                                  'resolved', 'auto_resolved')) THEN
        RETURN NULL;
    END IF;
    WITH t AS MATERIALIZED (
        SELECT h.history_id, h.event_id, h.transition, h.detector, h.severity, h.subject, h.summary,
               CASE WHEN h.transition IN ('opened', 'severity_changed')
                    THEN monitor.active_silence(h.detector, h.subject) END AS silence_id
          FROM added h
         WHERE h.transition IN ('opened', 'severity_changed', 'acknowledged', 'resolved', 'auto_resolved')
    ), routed AS (
        SELECT t.*, r.route_id, r.receiver
          FROM t CROSS JOIN LATERAL monitor.matching_routes(t.detector, t.severity, t.subject) r
         WHERE r.send_resolved OR t.transition NOT IN ('resolved', 'auto_resolved')
    ), told AS (                   -- follow-ups: the receivers already told of the event
        SELECT t.*, d.route_id, d.receiver
          FROM t CROSS JOIN LATERAL (
                   SELECT DISTINCT ON (d.receiver) d.receiver, d.route_id FROM monitor.deliveries d
                    WHERE d.event_id = t.event_id AND d.status IN ('pending', 'failed', 'sent', 'digested')
                      AND d.transition IN ('opened', 'severity_changed', 'repeat', 'escalated')
                    ORDER BY d.receiver, d.delivery_id DESC) d
         WHERE t.transition <> 'opened'
           AND NOT (t.transition IN ('resolved', 'auto_resolved')   -- a route that sends no resolutions
                    AND EXISTS (SELECT FROM monitor.routes r WHERE r.route_id = d.route_id AND NOT r.send_resolved))
    ), m AS (
        SELECT DISTINCT ON (x.history_id, x.receiver) x.* FROM (
            SELECT * FROM routed UNION ALL SELECT * FROM told) x
         ORDER BY x.history_id, x.receiver
    ), queued AS (
        INSERT INTO monitor.deliveries (event_id, detector, transition, receiver, route_id, status)
        SELECT m.event_id, m.detector, m.transition, m.receiver, m.route_id,
               CASE WHEN m.silence_id IS NULL THEN 'pending' ELSE 'suppressed' END
          FROM m
    )
    INSERT INTO monitor.alert_history (event_id, transition, actor, note, detector, severity, subject, summary)
    SELECT DISTINCT ON (m.history_id) m.event_id, 'suppressed', 'auto',
           format('%s not sent: silence %s (%s)', m.transition, m.silence_id, s.comment),
           m.detector, m.severity, m.subject, m.summary
      FROM m JOIN monitor.silences s ON s.silence_id = m.silence_id
     ORDER BY m.history_id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS alert_history_enqueue ON monitor.alert_history;
CREATE TRIGGER alert_history_enqueue AFTER INSERT ON monitor.alert_history
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION monitor.enqueue_deliveries();

-- How long an event goes between notifications while it is open and not acknowledged: the route's
-- repeat_every, else 4 hours for a critical event; NULL (or 0): never again.
CREATE OR REPLACE FUNCTION monitor.repeat_interval(p_route monitor.routes, p_severity text) RETURNS interval
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT nullif(coalesce(p_route.repeat_every, CASE WHEN p_severity = 'critical' THEN interval '4 hours' END),
                  interval '0')
$$;

-- What time makes due: a repeat for an open, unacknowledged event whose receiver was last told
-- longer ago than its repeat interval (or never, when a silence held back every transition and has
-- ended), and an escalation for one still open and unacknowledged escalate_after after it opened.
-- Called by the worker every few seconds; returns how many deliveries it enqueued.
CREATE OR REPLACE FUNCTION monitor.enqueue_due() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    -- nothing can come due: no route repeats or escalates (the default repeat is for critical events)
    IF NOT EXISTS (SELECT FROM monitor.routes r
                    WHERE r.escalate_after IS NOT NULL OR r.repeat_every > interval '0'
                       OR (r.repeat_every IS NULL AND EXISTS (SELECT FROM monitor.events e
                                                               WHERE e.status = 'open' AND e.severity = 'critical'))) THEN
        RETURN 0;
    END IF;
    -- one worker at a time (the others skip it): two would enqueue the same repeat twice
    PERFORM FROM monitor.run_locks l WHERE l.detector = 'notify.enqueue_due' FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH open_routed AS (
        SELECT e.event_id, e.detector, e.severity, e.subject, e.first_seen, r
          FROM monitor.events e
         CROSS JOIN LATERAL monitor.matching_routes(e.detector, e.severity, e.subject) r
         WHERE e.status = 'open' AND monitor.active_silence(e.detector, e.subject) IS NULL
    ), due AS (
        SELECT o.event_id, o.detector, 'repeat' AS transition, (o.r).receiver, (o.r).route_id
          FROM open_routed o
         WHERE monitor.repeat_interval(o.r, o.severity) IS NOT NULL
           AND NOT EXISTS (SELECT FROM monitor.deliveries d
                            WHERE d.event_id = o.event_id AND d.receiver = (o.r).receiver
                              AND d.status <> 'suppressed'
                              AND d.created_at > now() - monitor.repeat_interval(o.r, o.severity))
        UNION ALL
        SELECT o.event_id, o.detector, 'escalated', (o.r).escalate_to, (o.r).route_id
          FROM open_routed o
         WHERE (o.r).escalate_after IS NOT NULL AND o.first_seen <= now() - (o.r).escalate_after
           AND NOT EXISTS (SELECT FROM monitor.deliveries d
                            WHERE d.event_id = o.event_id AND d.route_id = (o.r).route_id
                              AND d.transition = 'escalated')
    )
    INSERT INTO monitor.deliveries (event_id, detector, transition, receiver, route_id)
    SELECT d.event_id, d.detector, d.transition, d.receiver, d.route_id FROM due d
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- the row enqueue_due locks (made here, at install: a row being inserted would make the next look wait)
INSERT INTO monitor.run_locks (detector) VALUES ('notify.enqueue_due') ON CONFLICT (detector) DO NOTHING;

-- Storm control: when one detector's new events for one receiver, those waiting and those sent
-- within notify.digest_window, number more than notify.digest_threshold, the waiting ones become
-- one digest delivery (their count, the amount at stake, the ten largest). Returns the digests made.
CREATE OR REPLACE FUNCTION monitor.fold_digests() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_threshold integer := coalesce((monitor.setting('notify.digest_threshold') #>> '{}')::integer, 20);
    v_window interval := coalesce((monitor.setting('notify.digest_window') #>> '{}')::interval, interval '5 minutes');
    n integer;
BEGIN
    WITH waiting AS MATERIALIZED ( -- new events not yet claimed, per receiver and detector; PagerDuty keeps
        SELECT d.receiver, d.detector, count(*) AS n    -- one incident per event (acknowledged, resolved by it)
          FROM monitor.deliveries d JOIN monitor.receivers r ON r.name = d.receiver AND r.type <> 'pagerduty'
         WHERE d.status = 'pending' AND d.transition = 'opened' AND d.attempts = 0 AND d.lease_until IS NULL
           AND d.due_at <= now()
         GROUP BY d.receiver, d.detector
    ), storm AS MATERIALIZED (     -- more than the threshold with those sent within the window
        SELECT w.receiver, w.detector FROM waiting w
         WHERE w.n >= 2
           AND w.n + (SELECT count(*) FROM monitor.deliveries s
                       WHERE s.receiver = w.receiver AND s.detector = w.detector AND s.transition = 'opened'
                         AND s.status IN ('sent', 'digested') AND s.created_at > now() - v_window) > v_threshold
    ), locked AS MATERIALIZED (    -- only the storm's deliveries are locked (a claim skips them meanwhile)
        SELECT d.delivery_id, d.receiver, d.detector, d.event_id
          FROM monitor.deliveries d JOIN storm s ON s.receiver = d.receiver AND s.detector = d.detector
         WHERE d.status = 'pending' AND d.transition = 'opened' AND d.attempts = 0 AND d.lease_until IS NULL
           AND d.due_at <= now()
           FOR UPDATE OF d SKIP LOCKED
    ), groups AS (
        SELECT l.receiver, l.detector, array_agg(l.delivery_id ORDER BY l.delivery_id) AS ids,
               array_agg(l.event_id ORDER BY l.delivery_id) AS events
          FROM locked l
         GROUP BY l.receiver, l.detector
        HAVING count(*) >= 2
    ), digests AS (
        INSERT INTO monitor.deliveries (event_id, detector, transition, receiver, digest)
        SELECT NULL, g.detector, 'digest', g.receiver,
               (SELECT jsonb_build_object(
                           'events', count(*), 'amount', coalesce(sum(abs(e.amount)), 0),
                           'severity', (array_agg(e.severity ORDER BY monitor.severity_rank(e.severity) DESC))[1],
                           'event_ids', jsonb_agg(e.event_id ORDER BY e.event_id),
                           'largest', (SELECT jsonb_agg(x ORDER BY x.n) FROM (
                                           SELECT row_number() OVER (ORDER BY abs(l.amount) DESC NULLS LAST,
                                                                              l.event_id) AS n,
                                                  l.event_id, l.subject, l.amount, l.summary
                                             FROM monitor.events l WHERE l.event_id = ANY (g.events)
                                            ORDER BY abs(l.amount) DESC NULLS LAST, l.event_id LIMIT 10) x))
                  FROM monitor.events e WHERE e.event_id = ANY (g.events))
          FROM groups g
        RETURNING delivery_id, receiver, detector
    ), folded AS (
        UPDATE monitor.deliveries d SET status = 'digested', digest_id = x.delivery_id
          FROM digests x JOIN groups g ON g.receiver = x.receiver AND g.detector = x.detector
         WHERE d.delivery_id = ANY (g.ids)
        RETURNING d.digest_id
    )
    SELECT count(DISTINCT f.digest_id) INTO n FROM folded f;
    RETURN n;
END
$$;

-- Whether a delivery may be sent now: no earlier delivery of the same event to the same receiver is
-- still waiting. A receiver hears of an event's transitions in the order they happened (PagerDuty's
-- resolve never overtakes its trigger), across batches, workers and retries; an earlier one that is
-- given up no longer holds the later ones back.
CREATE OR REPLACE FUNCTION monitor.in_turn(q monitor.deliveries) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT q.event_id IS NULL OR NOT EXISTS (
        SELECT FROM monitor.deliveries p
          LEFT JOIN monitor.deliveries g ON g.delivery_id = p.digest_id  -- folded into a digest: its turn
         WHERE p.event_id = q.event_id AND p.receiver = q.receiver AND p.delivery_id < q.delivery_id
           AND (p.status IN ('pending', 'failed') OR (p.status = 'digested' AND g.status IN ('pending', 'failed'))))
$$;

-- Claim up to p_limit deliveries that are due, for one worker, under a lease of p_lease: each is
-- locked FOR UPDATE SKIP LOCKED, so workers on any number of hosts never claim the same delivery
-- while its lease runs; a delivery whose worker died is claimed again when its lease expires (at
-- least once; receivers drop repeats by idempotency_key). A receiver whose circuit is open gets
-- nothing; once its pause is over it gets one delivery (the probe) until that one's outcome is
-- known. Storms are folded into digests first. Returns what the worker needs to send each one.
CREATE OR REPLACE FUNCTION monitor.claim_deliveries(p_worker text, p_limit integer, p_lease interval)
RETURNS TABLE (delivery_id bigint, idempotency_key uuid, transition text, detector text, attempts integer, receiver text,
               receiver_type text, receiver_config jsonb, secret_env text, secret text, event jsonb,
               digest jsonb, created_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_probes bigint[] := '{}';  -- the deliveries claimed one receiver at a time (probes, rate limits)
    v_name text;
    v_probe bigint;
    v_allowed integer;
BEGIN
    IF p_limit NOT BETWEEN 1 AND 10000 OR p_lease NOT BETWEEN interval '1 second' AND interval '1 hour' THEN
        RAISE EXCEPTION 'claim: limit must be from 1 to 10000 and lease from 1 second to 1 hour'
            USING ERRCODE = '22023';
    END IF;
    PERFORM monitor.fold_digests();
    -- receivers whose circuit has been open its while: one probe each, and the circuit stays shut to
    -- every other claim until that probe's outcome is recorded
    FOR v_name IN
        SELECT r.name FROM monitor.receivers r
         WHERE r.failures >= 5 AND (r.open_until IS NULL OR r.open_until <= clock_timestamp())
         ORDER BY r.name
           FOR UPDATE OF r SKIP LOCKED
    LOOP
        v_probe := (SELECT q.delivery_id FROM monitor.deliveries q
                     WHERE q.receiver = v_name AND q.status IN ('pending', 'failed')
                       AND q.due_at <= clock_timestamp()
                       AND (q.lease_until IS NULL OR q.lease_until < clock_timestamp()) AND monitor.in_turn(q)
                     ORDER BY q.due_at, q.delivery_id LIMIT 1
                       FOR UPDATE SKIP LOCKED);
        CONTINUE WHEN v_probe IS NULL;
        UPDATE monitor.receivers r SET open_until = clock_timestamp() + p_lease WHERE r.name = v_name;
        v_probes := v_probes || v_probe;
    END LOOP;
    -- receivers with a rate limit (config rate_per_minute): no more than that many attempts in any
    -- minute, counting those made and those in flight; their row is locked, so workers take turns
    FOR v_name, v_allowed IN
        SELECT r.name, (r.config ->> 'rate_per_minute')::integer FROM monitor.receivers r
         WHERE r.config ? 'rate_per_minute' AND r.failures < 5
           AND (r.open_until IS NULL OR r.open_until <= clock_timestamp())
           AND EXISTS (SELECT FROM monitor.deliveries q
                        WHERE q.receiver = r.name AND q.status IN ('pending', 'failed') AND q.due_at <= clock_timestamp())
         ORDER BY r.name
           FOR UPDATE OF r
    LOOP
        v_allowed := v_allowed
                     - (SELECT count(*) FROM monitor.delivery_attempts a
                         WHERE a.receiver = v_name AND a.started_at > clock_timestamp() - interval '1 minute')
                     - (SELECT count(*) FROM monitor.deliveries q
                         WHERE q.receiver = v_name AND q.lease_until > clock_timestamp()
                           AND q.status IN ('pending', 'failed'));
        CONTINUE WHEN v_allowed <= 0;
        v_probes := v_probes || ARRAY(SELECT q.delivery_id FROM monitor.deliveries q
                                       WHERE q.receiver = v_name AND q.status IN ('pending', 'failed')
                                         AND q.due_at <= clock_timestamp()
                                         AND (q.lease_until IS NULL OR q.lease_until < clock_timestamp()) AND monitor.in_turn(q)
                                       ORDER BY q.due_at, q.delivery_id LIMIT least(v_allowed, p_limit)
                                         FOR UPDATE SKIP LOCKED);
    END LOOP;
    RETURN QUERY
    WITH picked AS (
        SELECT q.delivery_id FROM monitor.deliveries q JOIN monitor.receivers r ON r.name = q.receiver
         WHERE q.status IN ('pending', 'failed') AND q.due_at <= clock_timestamp()
           AND (q.lease_until IS NULL OR q.lease_until < clock_timestamp()) AND monitor.in_turn(q)
           AND r.failures < 5 AND (r.open_until IS NULL OR r.open_until <= clock_timestamp())
           AND NOT r.config ? 'rate_per_minute'
         ORDER BY q.due_at, q.delivery_id
         LIMIT greatest(p_limit - cardinality(array_remove(v_probes, NULL)), 0)
           FOR UPDATE OF q SKIP LOCKED
    ), leased AS (
        UPDATE monitor.deliveries q SET lease_until = clock_timestamp() + p_lease, leased_by = p_worker,
                                        attempts = q.attempts + 1
         WHERE q.delivery_id IN (SELECT p.delivery_id FROM picked p) OR q.delivery_id = ANY (v_probes)
        RETURNING q.*
    )
    SELECT q.delivery_id, q.idempotency_key, q.transition, q.detector, q.attempts, r.name, r.type, r.config,
           r.secret_env, r.secret, CASE WHEN e.event_id IS NOT NULL THEN to_jsonb(e) END, q.digest, q.created_at
      FROM leased q
      JOIN monitor.receivers r ON r.name = q.receiver
      LEFT JOIN monitor.events e ON e.event_id = q.event_id
     ORDER BY q.due_at, q.delivery_id;
END
$$;

-- The outcome of one attempt, recorded by the worker that made it (p_attempt: the delivery's attempts
-- as that worker claimed it, which tells a late answer from the current one). Sent: the delivery is done, its
-- events' history says who was told, and the receiver's circuit closes. Failed: retried after an
-- exponential backoff with full jitter (or the receiver's Retry-After), unless the failure is
-- permanent (p_retry false, a 4xx but 429) or the delivery ran out of attempts or age: then it is
-- dead, and the history says so. Five failures in a row open the receiver's circuit for 60 s.
CREATE OR REPLACE FUNCTION monitor.record_attempt(p_delivery_id bigint, p_worker text, p_attempt integer,
                                                  p_ok boolean, p_started timestamptz, p_latency_ms numeric,
                                                  p_status_code integer DEFAULT NULL, p_reply text DEFAULT NULL,
                                                  p_retry boolean DEFAULT true, p_retry_after interval DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    q monitor.deliveries;
    v_max_attempts integer := coalesce((monitor.setting('notify.max_attempts') #>> '{}')::integer, 10);
    v_max_age interval := coalesce((monitor.setting('notify.max_age') #>> '{}')::interval, interval '24 hours');
    v_reply text := left(p_reply, 500);
    v_status text;
BEGIN
    SELECT * INTO q FROM monitor.deliveries d WHERE d.delivery_id = p_delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;  -- pruned meanwhile
    END IF;
    INSERT INTO monitor.delivery_attempts (delivery_id, receiver, started_at, latency_ms, ok, status_code, reply, worker)
    VALUES (p_delivery_id, q.receiver, p_started, round(p_latency_ms, 2), p_ok, p_status_code, v_reply, p_worker);
    IF q.status IN ('sent', 'dead') AND NOT (p_ok AND q.status = 'dead') THEN
        RETURN q.status;  -- another worker finished it after this one's lease ran out
    END IF;
    IF NOT p_ok AND (q.leased_by IS DISTINCT FROM p_worker OR q.attempts <> p_attempt) THEN
        -- a late failure: this worker's lease ran out and another has the delivery now (or had it and
        -- let go): the attempt is kept, the delivery is the other worker's to judge
        RETURN q.status;
    END IF;
    IF p_ok THEN  -- (a late success still counts: the receiver has it)
        v_status := 'sent';
        UPDATE monitor.deliveries d SET status = 'sent', sent_at = clock_timestamp(), lease_until = NULL,
                                        last_error = NULL
         WHERE d.delivery_id = p_delivery_id;
        UPDATE monitor.receivers r SET failures = 0, open_until = NULL WHERE r.name = q.receiver;
    ELSE
        v_status := CASE WHEN NOT p_retry OR q.attempts >= v_max_attempts OR q.created_at < now() - v_max_age
                         THEN 'dead' ELSE 'failed' END;
        UPDATE monitor.deliveries d
           SET status = v_status, lease_until = NULL, last_error = v_reply,
               due_at = clock_timestamp() + coalesce(
                   CASE WHEN p_retry_after IS NOT NULL THEN least(p_retry_after, interval '1 hour') END,
                   -- full jitter: uniform between 0 and min(10 minutes, 2 s * 2^attempts)
                   random() * least(interval '10 minutes', interval '2 seconds' * power(2, least(q.attempts, 20))))
         WHERE d.delivery_id = p_delivery_id;
        IF p_retry THEN
            UPDATE monitor.receivers r
               SET failures = r.failures + 1,
                   open_until = CASE WHEN r.failures + 1 >= 5 THEN clock_timestamp() + interval '60 seconds' END
             WHERE r.name = q.receiver;
        ELSE
            -- the receiver answered and refused this one: it is up, so its circuit closes
            UPDATE monitor.receivers r SET failures = 0, open_until = NULL WHERE r.name = q.receiver;
        END IF;
    END IF;
    IF v_status IN ('sent', 'dead') THEN
        INSERT INTO monitor.alert_history (event_id, transition, actor, note, detector, severity, subject, summary)
        SELECT e.event_id, CASE v_status WHEN 'sent' THEN 'notified' ELSE 'notification_failed' END, 'auto',
               format('%s to %s%s', q.transition, q.receiver,
                      CASE WHEN v_status = 'dead' THEN format(' gave up after %s attempts: %s', q.attempts, v_reply)
                           ELSE '' END),
               e.detector, e.severity, e.subject, e.summary
          FROM monitor.events e
         WHERE e.event_id = q.event_id
            OR (q.transition = 'digest' AND e.event_id IN (SELECT m.event_id FROM monitor.deliveries m
                                                            WHERE m.digest_id = q.delivery_id));
    END IF;
    RETURN v_status;
END
$$;

-- Send a dead (or failed) delivery again now, with a fresh count of attempts (its age still counts:
-- an old one that fails again is dead again at once).
CREATE OR REPLACE FUNCTION monitor.retry_delivery(p_delivery_id bigint) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_status text;
BEGIN
    SELECT CASE WHEN d.lease_until > clock_timestamp() THEN 'being sent' ELSE d.status END INTO v_status
      FROM monitor.deliveries d WHERE d.delivery_id = p_delivery_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'delivery % does not exist', p_delivery_id USING ERRCODE = 'no_data_found';
    ELSIF v_status NOT IN ('dead', 'failed') THEN
        RAISE EXCEPTION 'delivery % is %, not dead or failed: nothing to retry', p_delivery_id, v_status
            USING ERRCODE = '22023';
    END IF;
    UPDATE monitor.deliveries d SET status = 'pending', attempts = 0, due_at = clock_timestamp(), lease_until = NULL
     WHERE d.delivery_id = p_delivery_id;
    RETURN 'pending';
END
$$;

-- Receivers, routes and silences are managed through these functions, which check every value
-- (monitorctl receivers / routes / silence call them).

-- Add (or replace) a receiver. Its config holds no secret: the secret is the name of an environment
-- variable of the worker (p_secret_env) or, given literally, p_secret, which only monitor's owner reads.
CREATE OR REPLACE FUNCTION monitor.add_receiver(p_name text, p_type text, p_config jsonb,
                                                p_secret_env text DEFAULT NULL, p_secret text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    url text := p_config ->> 'url';
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'receiver name must be lower-case letters, digits, - and _, not %', coalesce(p_name, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_type IS NULL OR p_type NOT IN ('webhook', 'slack', 'email', 'pagerduty') THEN
        RAISE EXCEPTION 'receiver type must be webhook, slack, email or pagerduty, not %', coalesce(p_type, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF p_secret_env IS NOT NULL AND p_secret IS NOT NULL THEN
        RAISE EXCEPTION 'give the secret as an environment variable or literally, not both' USING ERRCODE = '22023';
    END IF;
    IF p_secret_env IS NOT NULL AND p_secret_env !~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN
        RAISE EXCEPTION 'secret environment variable must be a name such as HOOK_SECRET, not %', p_secret_env
            USING ERRCODE = '22023';
    END IF;
    IF p_config ? 'rate_per_minute' AND (jsonb_typeof(p_config -> 'rate_per_minute') <> 'number'
       OR (p_config ->> 'rate_per_minute') !~ '^[0-9]+$' OR (p_config ->> 'rate_per_minute')::numeric NOT BETWEEN 1 AND 100000) THEN
        RAISE EXCEPTION 'rate per minute must be a whole number from 1 to 100000, not %', p_config -> 'rate_per_minute'
            USING ERRCODE = '22023';
    END IF;
    IF url IS NOT NULL AND url !~ '^https?://[^\s/]+' THEN
        RAISE EXCEPTION 'url must be an http:// or https:// URL, not %', url USING ERRCODE = '22023';
    END IF;
    IF p_type = 'webhook' AND url IS NULL THEN
        RAISE EXCEPTION 'a webhook receiver needs --url' USING ERRCODE = '22023';
    ELSIF p_type = 'webhook' AND p_secret IS NOT NULL AND p_secret !~ '^whsec_[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'a webhook secret must be a Standard Webhooks secret such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
            USING ERRCODE = '22023';
    ELSIF p_type = 'slack' AND url IS NULL AND p_secret_env IS NULL AND p_secret IS NULL THEN
        RAISE EXCEPTION 'a slack receiver needs its incoming-webhook URL: --secret-env VAR (preferred) or --url'
            USING ERRCODE = '22023';
    ELSIF p_type = 'pagerduty' AND p_secret_env IS NULL AND p_secret IS NULL THEN
        RAISE EXCEPTION 'a pagerduty receiver needs a routing key: --routing-key-env VAR' USING ERRCODE = '22023';
    ELSIF p_type = 'email' AND (p_config ->> 'host' IS NULL OR p_config ->> 'from' IS NULL
                                OR jsonb_typeof(p_config -> 'to') <> 'array'
                                OR jsonb_array_length(p_config -> 'to') = 0) THEN
        RAISE EXCEPTION 'an email receiver needs --smtp HOST:PORT, --from and at least one --to' USING ERRCODE = '22023';
    END IF;
    INSERT INTO monitor.receivers AS r (name, type, config, secret_env, secret)
    VALUES (p_name, p_type, coalesce(p_config, '{}'), p_secret_env, p_secret)
    ON CONFLICT (name) DO UPDATE
        SET type = excluded.type, config = excluded.config, secret_env = excluded.secret_env,
            secret = excluded.secret, failures = 0, open_until = NULL;
    RETURN p_name;
END
$$;

CREATE OR REPLACE FUNCTION monitor.remove_receiver(p_name text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_route bigint;
BEGIN
    SELECT r.route_id INTO v_route FROM monitor.routes r
     WHERE r.receiver = p_name OR r.escalate_to = p_name ORDER BY r.route_id LIMIT 1;
    IF v_route IS NOT NULL THEN
        RAISE EXCEPTION 'receiver % is used by route %: remove the route first (monitorctl routes remove %)',
            p_name, v_route, v_route USING ERRCODE = '22023';
    END IF;
    DELETE FROM monitor.receivers r WHERE r.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown receiver %', p_name USING ERRCODE = '22023',
            HINT = 'monitorctl receivers list shows the receivers';
    END IF;
    -- what it was sent stays on record; what it was still to be sent never will be
    UPDATE monitor.deliveries d SET status = 'dead', last_error = 'receiver removed', lease_until = NULL
     WHERE d.receiver = p_name AND d.status IN ('pending', 'failed');
    RETURN p_name;
END
$$;

-- Append a route (after every other). Returns its id.
CREATE OR REPLACE FUNCTION monitor.add_route(p_receiver text, p_min_severity text DEFAULT 'low',
                                             p_detectors text[] DEFAULT NULL, p_subject_glob text DEFAULT NULL,
                                             p_repeat interval DEFAULT NULL, p_send_resolved boolean DEFAULT true,
                                             p_continue boolean DEFAULT false, p_escalate_after interval DEFAULT NULL,
                                             p_escalate_to text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_unknown text;
    v_id bigint;
BEGIN
    FOREACH v_unknown IN ARRAY ARRAY[p_receiver, p_escalate_to] LOOP
        IF v_unknown IS NOT NULL AND NOT EXISTS (SELECT FROM monitor.receivers r WHERE r.name = v_unknown) THEN
            RAISE EXCEPTION 'unknown receiver %', v_unknown USING ERRCODE = '22023',
                HINT = 'monitorctl receivers add creates one';
        END IF;
    END LOOP;
    IF p_receiver IS NULL THEN
        RAISE EXCEPTION 'a route needs --receiver' USING ERRCODE = '22023';
    END IF;
    IF monitor.severity_rank(p_min_severity) IS NULL THEN
        RAISE EXCEPTION 'severity must be one of critical, high, medium, low, not %', coalesce(p_min_severity, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    SELECT d INTO v_unknown FROM unnest(p_detectors) d
     WHERE NOT EXISTS (SELECT FROM monitor.detectors x WHERE x.name = d) LIMIT 1;
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown detector %', v_unknown USING ERRCODE = '22023',
            HINT = 'monitorctl detectors list shows the registered detectors';
    END IF;
    IF (p_escalate_after IS NULL) <> (p_escalate_to IS NULL) THEN
        RAISE EXCEPTION '--escalate-after and --escalate-to go together' USING ERRCODE = '22023';
    END IF;
    IF p_repeat < interval '0' OR p_repeat > interval '30 days' OR p_escalate_after <= interval '0'
       OR p_escalate_after > interval '30 days' THEN
        RAISE EXCEPTION 'repeat must be from 0 (never) to 30 days and escalate-after from 1 second to 30 days'
            USING ERRCODE = '22023';
    END IF;
    IF p_repeat > interval '0' AND p_repeat < interval '1 minute' THEN
        RAISE EXCEPTION 'repeat must be at least a minute (or 0: never), not %', p_repeat USING ERRCODE = '22023';
    END IF;
    INSERT INTO monitor.routes (position, receiver, min_severity, detectors, subject_glob, repeat_every,
                                send_resolved, continue_after, escalate_after, escalate_to)
    SELECT coalesce(max(r.position), 0) + 1, p_receiver, p_min_severity, p_detectors, p_subject_glob, p_repeat,
           p_send_resolved, p_continue, p_escalate_after, p_escalate_to
      FROM monitor.routes r
    RETURNING route_id INTO v_id;
    RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION monitor.remove_route(p_route_id bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    DELETE FROM monitor.routes r WHERE r.route_id = p_route_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown route %', p_route_id USING ERRCODE = '22023',
            HINT = 'monitorctl routes list shows the routes';
    END IF;
    RETURN p_route_id;
END
$$;

-- Silence events of a detector and/or a subject pattern from p_starts (default now) until p_ends.
-- Callable by monitor_operator: on-call people silence what they are working on.
CREATE OR REPLACE FUNCTION monitor.add_silence(p_detector text, p_subject_glob text, p_starts timestamptz,
                                               p_ends timestamptz, p_comment text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_starts timestamptz := coalesce(p_starts, now());
    v_id bigint;
BEGIN
    IF p_detector IS NOT NULL AND NOT EXISTS (SELECT FROM monitor.detectors d WHERE d.name = p_detector) THEN
        RAISE EXCEPTION 'unknown detector %', p_detector USING ERRCODE = '22023',
            HINT = 'monitorctl detectors list shows the registered detectors';
    END IF;
    IF nullif(btrim(p_comment), '') IS NULL THEN
        RAISE EXCEPTION 'a silence needs --comment: why, for the people who will wonder' USING ERRCODE = '22023';
    END IF;
    IF p_ends IS NULL OR p_ends <= v_starts OR p_ends <= now() THEN
        RAISE EXCEPTION 'a silence must end after it starts and after now (ends %, starts %)', p_ends, v_starts
            USING ERRCODE = '22023';
    END IF;
    IF p_ends > v_starts + interval '90 days' THEN
        RAISE EXCEPTION 'a silence lasts at most 90 days, not %', p_ends - v_starts USING ERRCODE = '22023';
    END IF;
    INSERT INTO monitor.silences (detector, subject_glob, starts_at, ends_at, comment)
    VALUES (p_detector, p_subject_glob, v_starts, p_ends, p_comment)
    RETURNING silence_id INTO v_id;
    RETURN v_id;
END
$$;

-- End a silence now (one that has not started is removed).
CREATE OR REPLACE FUNCTION monitor.expire_silence(p_silence_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    DELETE FROM monitor.silences s WHERE s.silence_id = p_silence_id AND s.starts_at >= now();
    IF NOT FOUND THEN
        UPDATE monitor.silences s SET ends_at = now() WHERE s.silence_id = p_silence_id AND s.ends_at > now();
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no active or coming silence %', p_silence_id USING ERRCODE = '22023',
                HINT = 'monitorctl silence list shows them';
        END IF;
    END IF;
    RETURN p_silence_id;
END
$$;

-- Whether a receiver has a literal secret (for `receivers list`, which the reader may run: the column
-- itself is the owner's alone).
CREATE OR REPLACE FUNCTION monitor.receiver_has_secret(p_name text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT r.secret IS NOT NULL FROM monitor.receivers r WHERE r.name = p_name
$$;
