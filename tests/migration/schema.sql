CREATE SCHEMA ledger;

CREATE SCHEMA monitor;

CREATE TYPE monitor.finding AS (
	subject text,
	dedup_key text,
	txn_id text,
	amount numeric,
	summary text,
	evidence jsonb
);

CREATE FUNCTION ledger.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'ledger', 'pg_temp'
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION monitor.account_difference(p_account text) RETURNS numeric
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT a.balance - a.opening_balance
           - coalesce((SELECT sum(t.amount) FROM monitor.src_transactions t
                        WHERE t.account_id = p_account AND t.status = 'success'), 0)
      FROM monitor.src_accounts a
     WHERE a.account_id = p_account
$$;

COMMENT ON FUNCTION monitor.account_difference(p_account text) IS 'balance - (opening_balance + sum of success amounts) of one account, from its rows.';

CREATE FUNCTION monitor.accounts_have_updated_at() RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT true
$$;

CREATE FUNCTION monitor.acknowledge(p_event_ids bigint[], p_actor text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION monitor.acknowledge(p_event_ids bigint[], p_actor text) IS 'Acknowledge open events (all or nothing); already acknowledged ones are left as they are.';

CREATE FUNCTION monitor.active_silence(p_detector text, p_subject text) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT s.silence_id FROM monitor.silences s
     WHERE s.starts_at <= now() AND now() < s.ends_at
       AND (s.detector IS NULL OR s.detector = p_detector)
       AND (s.subject_glob IS NULL OR p_subject LIKE monitor.glob_like(s.subject_glob))
     ORDER BY s.silence_id
     LIMIT 1
$$;

CREATE FUNCTION monitor.add_receiver(p_name text, p_type text, p_config jsonb, p_secret_env text DEFAULT NULL::text, p_secret text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION monitor.add_route(p_receiver text, p_min_severity text DEFAULT 'low'::text, p_detectors text[] DEFAULT NULL::text[], p_subject_glob text DEFAULT NULL::text, p_repeat interval DEFAULT NULL::interval, p_send_resolved boolean DEFAULT true, p_continue boolean DEFAULT false, p_escalate_after interval DEFAULT NULL::interval, p_escalate_to text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.add_silence(p_detector text, p_subject_glob text, p_starts timestamp with time zone, p_ends timestamp with time zone, p_comment text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE TABLE monitor.detectors (
    name text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    severity text NOT NULL,
    kind text NOT NULL,
    schedule text DEFAULT '* * * * *'::text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    param_defaults jsonb DEFAULT '{}'::jsonb NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    function text NOT NULL,
    prepare text,
    builtin boolean DEFAULT false NOT NULL,
    scheduled boolean DEFAULT false NOT NULL,
    enabled_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    function_digest text,
    CONSTRAINT detectors_kind_check CHECK ((kind = ANY (ARRAY['finding'::text, 'condition'::text]))),
    CONSTRAINT detectors_name_check CHECK ((name ~ '^[a-z][a-z0-9_]{0,62}$'::text)),
    CONSTRAINT detectors_severity_check CHECK ((severity = ANY (ARRAY['critical'::text, 'high'::text, 'medium'::text, 'low'::text])))
);

COMMENT ON COLUMN monitor.detectors.function_digest IS 'monitor.function_digest() of the detector function when it was registered; a run refuses a function that differs';

CREATE FUNCTION monitor.apply_findings(p_detector monitor.detectors, p_findings monitor.finding[], OUT opened integer, OUT updated integer, OUT resolved integer) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    SET plan_cache_mode TO 'force_custom_plan'
    SET work_mem TO '64MB'
    AS $$
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

CREATE FUNCTION monitor.balance_horizon_lag() RETURNS interval
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$ SELECT interval '5 minutes' $$;

CREATE FUNCTION monitor.check_detector_function(p_function text) RETURNS regprocedure
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION monitor.claim_deliveries(p_worker text, p_limit integer, p_lease interval) RETURNS TABLE(delivery_id bigint, idempotency_key uuid, transition text, detector text, attempts integer, receiver text, receiver_type text, receiver_config jsonb, secret_env text, secret text, event jsonb, digest jsonb, created_at timestamp with time zone)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.common_params(p_kind text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT jsonb_build_object('timeout', '50 seconds', 'lock_timeout', '5 seconds', 'exclude', '[]'::jsonb)
        || CASE WHEN p_kind = 'finding'
                THEN jsonb_build_object('late_window', '5 minutes', 'first_lookback', '24 hours')
                ELSE '{}'::jsonb END
$$;

CREATE FUNCTION monitor.configure_detector(p_name text, p_params jsonb DEFAULT NULL::jsonb, p_schedule text DEFAULT NULL::text, p_severity text DEFAULT NULL::text, p_enabled boolean DEFAULT NULL::boolean) RETURNS monitor.detectors
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION monitor.configure_detector(p_name text, p_params jsonb, p_schedule text, p_severity text, p_enabled boolean) IS 'Change a detector''s parameters (merged, validated), schedule, severity or enabled flag; NULL keeps a setting. monitorctl detectors enable|disable|set call it, then bring pg_cron''s jobs in line.';

CREATE FUNCTION monitor.cron_database() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    RETURN nullif(current_setting('cron.database_name', true), '');
EXCEPTION WHEN insufficient_privilege THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION monitor.cron_field(p_field text, lo integer, hi integer) RETURNS integer[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    part text;
    m text[];
    a integer; b integer; step integer;
    out integer[] := '{}';
BEGIN
    FOREACH part IN ARRAY string_to_array(p_field, ',') LOOP
        m := regexp_match(part, '^(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?$');
        IF m IS NULL THEN
            RAISE EXCEPTION 'cannot read cron field %', p_field;
        END IF;
        step := coalesce(m[4]::integer, 1);
        IF m[1] = '*' THEN a := lo; b := hi;
        ELSE a := m[2]::integer; b := coalesce(m[3]::integer, CASE WHEN m[4] IS NULL THEN a ELSE hi END);
        END IF;
        out := out || ARRAY(SELECT generate_series(a, b, step));
    END LOOP;
    RETURN out;
END
$_$;

CREATE FUNCTION monitor.cron_max_gap(p_schedule text) RETURNS interval
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
DECLARE
    f text[];
    minutes integer[];
    hours integer[];
    doms integer[];
    months integer[];
    dows integer[];
    day_ticks integer[];  -- minutes of the day with a tick
    d date;
    prev_day date;
    gap integer := 0;
    i integer;
BEGIN
    IF monitor.schedule_seconds(p_schedule) IS NOT NULL THEN  -- (sql/050_registry.sql: the one pattern)
        RETURN make_interval(secs => monitor.schedule_seconds(p_schedule));
    END IF;
    f := regexp_split_to_array(trim(CASE lower(trim(p_schedule))
        WHEN '@hourly' THEN '0 * * * *' WHEN '@daily' THEN '0 0 * * *' WHEN '@weekly' THEN '0 0 * * 0'
        WHEN '@monthly' THEN '0 0 1 * *' WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *'
        ELSE p_schedule END), '\s+');
    IF cardinality(f) <> 5 THEN
        RETURN NULL;  -- @reboot or unreadable: not judged
    END IF;
    minutes := monitor.cron_field(f[1], 0, 59);
    hours := monitor.cron_field(f[2], 0, 23);
    doms := monitor.cron_field(f[3], 1, 31);
    months := monitor.cron_field(f[4], 1, 12);
    dows := ARRAY(SELECT x % 7 FROM unnest(monitor.cron_field(f[5], 0, 7)) x);
    day_ticks := ARRAY(SELECT h * 60 + m FROM unnest(hours) h, unnest(minutes) m ORDER BY 1);
    FOR i IN 2 .. cardinality(day_ticks) LOOP
        gap := greatest(gap, day_ticks[i] - day_ticks[i - 1]);
    END LOOP;
    -- days with ticks over two (leap-including) years; cron ORs day-of-month and day-of-week when
    -- both are restricted
    FOR d IN SELECT g::date FROM generate_series(date '2024-01-01', date '2025-12-31', interval '1 day') g LOOP
        CONTINUE WHEN NOT (extract(month FROM d)::integer = ANY (months));
        CONTINUE WHEN NOT CASE
            WHEN f[3] <> '*' AND f[5] <> '*' THEN extract(day FROM d)::integer = ANY (doms)
                                                 OR extract(dow FROM d)::integer = ANY (dows)
            WHEN f[3] <> '*' THEN extract(day FROM d)::integer = ANY (doms)
            WHEN f[5] <> '*' THEN extract(dow FROM d)::integer = ANY (dows)
            ELSE true END;
        IF prev_day IS NOT NULL THEN
            gap := greatest(gap, (d - prev_day) * 1440 - day_ticks[cardinality(day_ticks)] + day_ticks[1]);
        END IF;
        prev_day := d;
    END LOOP;
    RETURN make_interval(mins => gap);
END
$$;

COMMENT ON FUNCTION monitor.cron_max_gap(p_schedule text) IS 'Longest gap between consecutive ticks of a cron schedule (or N seconds), for detector_health.';

CREATE FUNCTION monitor.detect_balance_chain(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH fresh AS (
        SELECT t.account_id, min(t.created_at) AS t0
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND (age(t.row_xmin) <= $4) IS NOT FALSE
           AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL
         GROUP BY t.account_id
    ), chain AS (
        SELECT r.*, f.t0,
               lag(r.txn_id) OVER w AS prev_id, lag(r.balance_after) OVER w AS prev_after,
               lag(r.balance_before) OVER w AS prev_before, lag(r.amount) OVER w AS prev_amount,
               lag(r.created_at) OVER w AS prev_at, lag(r.status) OVER w AS prev_status
          FROM fresh f
         CROSS JOIN LATERAL (
               (SELECT t.txn_id, t.account_id, t.amount, t.status, t.balance_before, t.balance_after,
                       t.created_at, t.sequence, false AS read_on
                  FROM monitor.src_transactions t
                 WHERE t.account_id = f.account_id AND t.created_at < f.t0
                   AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL
                 ORDER BY t.created_at DESC, t.sequence DESC NULLS FIRST, t.txn_id COLLATE "C" DESC
                 LIMIT 1)
               UNION ALL
               SELECT t.txn_id, t.account_id, t.amount, t.status, t.balance_before, t.balance_after,
                      t.created_at, t.sequence, true
                 FROM monitor.src_transactions t
                WHERE t.account_id = f.account_id AND t.created_at >= f.t0 AND t.created_at < $3
                  AND t.balance_before IS NOT NULL AND t.balance_after IS NOT NULL OFFSET 0) r
        WINDOW w AS (PARTITION BY r.account_id ORDER BY r.created_at, r.sequence NULLS LAST, r.txn_id COLLATE "C")
    ), breaks AS MATERIALIZED (
        -- every break among the rows read (the row before the earliest new one is only a link's
        -- other end): one query over the source, run where the account's rows are
        SELECT c.*,
               CASE WHEN c.prev_id IS NOT NULL AND c.balance_before <> c.prev_after THEN 'link' ELSE 'sum' END AS kind
          FROM chain c
         WHERE c.read_on
           AND ((c.prev_id IS NOT NULL AND c.balance_before <> c.prev_after)
                OR (c.status = 'success' AND c.balance_after <> c.balance_before + c.amount))
    ), broken AS (
        -- every break that no event names yet (resolved ones included: a finding is recorded once),
        -- each looked up by its key: what is reported does not depend on how often a row is read
        SELECT b.*
          FROM breaks b
          LEFT JOIN LATERAL (SELECT true AS recorded FROM monitor.events e
                              WHERE e.detector = 'balance_chain' AND e.dedup_key = b.txn_id LIMIT 1) e ON true
         WHERE e.recorded IS NULL
    )
    SELECT b.account_id,
           b.txn_id,
           b.txn_id,
           CASE b.kind WHEN 'link' THEN b.balance_before - b.prev_after
                       ELSE b.balance_after - (b.balance_before + b.amount) END,
           CASE b.kind
                WHEN 'link' THEN format('balance chain of %s broken at %s: it starts from %s, but %s before it ended at %s',
                                        b.account_id, b.txn_id, b.balance_before, b.prev_id, b.prev_after)
                ELSE format('balance chain of %s broken at %s: %s + %s makes %s, not %s', b.account_id, b.txn_id,
                            b.balance_before, b.amount, b.balance_before + b.amount, b.balance_after) END,
           jsonb_build_object(
               'account_id', b.account_id, 'broken', b.kind,
               'entry', jsonb_build_object('txn_id', b.txn_id, 'amount', b.amount, 'status', b.status,
                                           'balance_before', b.balance_before, 'balance_after', b.balance_after,
                                           'created_at', b.created_at),
               'previous', CASE WHEN b.prev_id IS NOT NULL THEN
                           jsonb_build_object('txn_id', b.prev_id, 'amount', b.prev_amount, 'status', b.prev_status,
                                              'balance_before', b.prev_before, 'balance_after', b.prev_after,
                                              'created_at', b.prev_at) END)
      FROM broken b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity'), monitor.seen_age(params);
END
$_$;

COMMENT ON FUNCTION monitor.detect_balance_chain(params jsonb, since timestamp with time zone) IS 'balance_chain: the first row of an account whose balances do not add up or do not follow the previous row''s.';

CREATE FUNCTION monitor.detect_balance_mismatch(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    h timestamptz := coalesce((SELECT high_water FROM monitor.watermarks
                                WHERE detector = 'balance_mismatch.horizon'), '-infinity');
    full_pass boolean := NOT params ? 'seen';
    tolerance numeric := (params ->> 'tolerance')::numeric;
    -- without accounts.updated_at a balance change shows only through a transaction: the accounts
    -- with a transaction after the horizon (the live rows, read anyway) are checked at every run, so
    -- a balance that moves up to balance_horizon_lag() after its transaction is still caught
    recheck_live boolean := NOT monitor.accounts_have_updated_at();
    -- The work is split along where the rows live. The reads of the sources (sums grouped by
    -- account_id, lookups by account_id) are queries of their own (MATERIALIZED) that join source
    -- rows with source rows on account_id only: on a distributed ledger (docs/scaling.md) each runs
    -- on the shards that hold the accounts. monitor's own tables (account_totals, events), which
    -- stay on the coordinator, are joined there with their results: a few rows per run, every
    -- account on a full pass.
    -- Two CTEs are joined only by a FULL JOIN, which is hashed or merged: with the new rows not yet
    -- in the statistics the planner expects a handful of them, and a nested loop of one CTE over
    -- another would be quadratic. A lookup by key is `= ANY` of an array (an index scan, on every
    -- shard too, where a join with the coordinator's intermediate result would be a hash join over
    -- a sequential scan).
    --
    -- `checked` (account_id, balance, opening_balance, settled, live; one row per account) comes
    -- first. A difference that a failed transaction of the account explains exactly (a rejected
    -- payment whose money moved anyway) names it: the failed rows of the mismatched accounts, read
    -- by key, one row per account, matched on the coordinator.
    report text := $r$,
            mismatched AS MATERIALIZED (
                SELECT c.account_id, c.balance, c.opening_balance, c.settled + c.live AS success_sum,
                       c.balance - (c.opening_balance + c.settled + c.live) AS diff
                  FROM checked c
                 WHERE abs(c.balance - (c.opening_balance + c.settled + c.live)) > $3
            ), failed AS MATERIALIZED (
                SELECT t.account_id, array_agg(t.txn_id ORDER BY t.created_at, t.txn_id) AS ids,
                       array_agg(t.amount ORDER BY t.created_at, t.txn_id) AS amounts
                  FROM monitor.src_transactions t
                 WHERE t.account_id = ANY (ARRAY(SELECT m.account_id FROM mismatched m)) AND t.status = 'failed'
                 GROUP BY t.account_id
            ), explained AS (
                SELECT m.*, nullif(ARRAY(SELECT u.id FROM unnest(f.ids, f.amounts) WITH ORDINALITY u(id, amount, n)
                                          WHERE u.amount = m.diff ORDER BY u.n), '{}') AS ids
                  FROM mismatched m FULL JOIN failed f ON f.account_id = m.account_id  -- (each f has its m)
            )
        SELECT x.account_id, x.account_id, NULL::text, x.diff,
               format('account %s balance %s differs from its history (%s) by %s%s', x.account_id, x.balance,
                      x.opening_balance + x.success_sum, x.diff,
                      CASE WHEN x.ids IS NOT NULL
                           THEN format(': failed transaction %s moved it', array_to_string(x.ids, ', ')) ELSE '' END),
               jsonb_build_object('account_id', x.account_id, 'balance', x.balance,
                                  'opening_balance', x.opening_balance,
                                  'success_sum', x.success_sum,
                                  'expected', x.opening_balance + x.success_sum,
                                  'difference', x.diff, 'explained_by', to_jsonb(x.ids),
                                  'tolerance', $3)
          FROM explained x $r$;
BEGIN
    IF full_pass THEN
        -- every account: one hash join of accounts and the live rows after the horizon (on the
        -- shards), then of its result and the totals
        RETURN QUERY EXECUTE $q$
            WITH live AS (
                SELECT t.account_id, sum(t.amount) AS live FROM monitor.src_transactions t
                 WHERE t.status = 'success' AND t.created_at >= $1 GROUP BY t.account_id
            ), per AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance, coalesce(l.live, 0) AS live
                  FROM monitor.src_accounts a LEFT JOIN live l ON l.account_id = a.account_id
            ), checked AS (
                SELECT p.account_id, p.balance, p.opening_balance, coalesce(tot.success_sum, 0) AS settled, p.live
                  FROM per p LEFT JOIN monitor.account_totals tot ON tot.account_id = p.account_id
            )$q$ || report USING h, since, tolerance;
    ELSE
        -- only the accounts that may have changed since `since` and that the previous run did not
        -- see (params ->> 'seen'): the accounts updated since then, read by a range scan of
        -- updated_at (their new row versions sit together), the accounts with new or changed
        -- transactions (a row committed late, created after the horizon, included: the live rows
        -- are read anyway), and those with an open event. `per` gathers the first two with their
        -- live amounts (after the horizon $1), one row per account (a full join of the updated
        -- accounts and the transactions grouped by account); those with an open event and no row
        -- read join them (their live amount is then 0: every live row is read). Only the few not
        -- updated are then read by key.
        RETURN QUERY EXECUTE $q$
            WITH open AS MATERIALIZED (
                SELECT DISTINCT e.subject AS account_id FROM monitor.events e
                 WHERE e.detector = 'balance_mismatch' AND e.status <> 'resolved'
            ), per AS MATERIALIZED (
                SELECT coalesce(a.account_id, t.account_id) AS account_id, a.balance, a.opening_balance,
                       coalesce(t.live, 0) AS live, a.account_id IS NOT NULL AS moved
                  FROM (SELECT a.account_id, a.balance, a.opening_balance FROM monitor.src_accounts a
                         WHERE a.updated_at >= $2 AND (age(a.row_xmin) <= $4) IS NOT FALSE) a
                  FULL JOIN (
                        SELECT t.account_id,
                               sum(CASE WHEN t.status = 'success' AND t.created_at >= $1 THEN t.amount END) AS live,
                               bool_or(((t.created_at >= least($1, $2) OR t.updated_at >= $2)
                                        AND (age(t.row_xmin) <= $4) IS NOT FALSE)
                                       OR ($5 AND t.created_at >= $1)) AS cand
                          FROM monitor.src_transactions t
                         WHERE t.created_at >= least($1, $2) OR t.updated_at >= $2
                         GROUP BY t.account_id) t ON t.account_id = a.account_id
                 WHERE a.account_id IS NOT NULL OR t.cand OR t.account_id IN (SELECT o.account_id FROM open o)
            ), todo AS MATERIALIZED (
                SELECT coalesce(p.account_id, o.account_id) AS account_id, p.balance, p.opening_balance,
                       coalesce(p.live, 0) AS live, coalesce(p.moved, false) AS moved
                  FROM per p FULL JOIN open o ON o.account_id = p.account_id
            ), looked_up AS MATERIALIZED (
                SELECT a.account_id, a.balance, a.opening_balance FROM monitor.src_accounts a
                 WHERE a.account_id = ANY (ARRAY(SELECT k.account_id FROM todo k WHERE NOT k.moved))
            ), checked AS MATERIALIZED (
                -- (an account not found has no balance: no difference; MATERIALIZED: the difference
                -- tested by `mismatched` would turn the full join into a left join.) The totals, on the
                -- coordinator, are joined by key through their hash index: a lookup per account, where
                -- `= ANY` of thousands of keys would be rechecked against the whole array at each row
                SELECT x.account_id, x.balance, x.opening_balance, coalesce(tot.success_sum, 0) AS settled, x.live
                  FROM (SELECT k.account_id, k.balance, k.opening_balance, k.live FROM todo k WHERE k.moved
                        UNION ALL
                        SELECT k.account_id, l.balance, l.opening_balance, k.live
                          FROM (SELECT * FROM todo k WHERE NOT k.moved) k
                          FULL JOIN looked_up l ON l.account_id = k.account_id) x
                  LEFT JOIN monitor.account_totals tot ON tot.account_id = x.account_id
            )$q$ || report USING h, since, tolerance, monitor.seen_age(params), recheck_live;
    END IF;
END
$_$;

COMMENT ON FUNCTION monitor.detect_balance_mismatch(params jsonb, since timestamp with time zone) IS 'balance_mismatch: balance differs from opening_balance + sum of success amounts by more than tolerance.';

CREATE FUNCTION monitor.detect_concurrent_txn(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT b.account_id,
           b.ids[1],
           b.ids[1],
           (SELECT sum(a) FROM unnest(b.amounts) a),
           format('%s transactions on %s within %s (from %s), total %s', cardinality(b.ids), b.account_id,
                  b.times[cardinality(b.times)] - b.times[1], b.times[1], (SELECT sum(a) FROM unnest(b.amounts) a)),
           jsonb_build_object(
               'account_id', b.account_id, 'transactions', cardinality(b.ids), 'first_txn_id', b.ids[1],
               'first_at', b.times[1], 'last_at', b.times[cardinality(b.times)],
               'txn_ids', to_jsonb(b.ids[1:50]), 'times', to_jsonb(b.times[1:50]),
               'amounts', to_jsonb(b.amounts[1:50]), 'statuses', to_jsonb(b.statuses[1:50]),
               'devices', to_jsonb(b.devices[1:50]), 'member_keys', to_jsonb(b.ids),
               'window', $1 ->> 'window', 'min_count', ($1 -> 'min_count'))
      FROM monitor.find_bursts(CASE WHEN ($1 ->> 'debits_only')::boolean IS FALSE THEN 'transactions' ELSE 'debits' END,
                               ($1 ->> 'window')::interval,
                               ($1 ->> 'min_count')::integer, $2, $3, monitor.seen_age($1),
                               ARRAY(SELECT jsonb_array_elements_text(coalesce($1 -> 'exclude', '[]'))) ) b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$_$;

COMMENT ON FUNCTION monitor.detect_concurrent_txn(params jsonb, since timestamp with time zone) IS 'concurrent_txn: a maximal burst of one account''s transactions, each within `window` of the previous.';

CREATE FUNCTION monitor.detect_consecutive_failures(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH fresh AS (                -- accounts with new or changed failures, and their earliest one:
        SELECT t.account_id, min(t.created_at) AS t0  -- a run that holds a fresh row holds a fresh failure
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND t.status = 'failed' AND t.is_primary
         GROUP BY t.account_id
    ), start AS (                  -- a run starts after the last success before that row, found
        SELECT f.account_id, p.t   -- backwards through (account_id, created_at); a lateral join rather
          FROM fresh f             -- than a scalar subquery, so that Citus runs it on each account's shard
          LEFT JOIN LATERAL (
              SELECT s.created_at AS t FROM monitor.src_transactions s
               WHERE s.account_id = f.account_id AND s.created_at < f.t0 AND s.status = 'success'
                 AND s.is_primary ORDER BY s.created_at DESC LIMIT 1) p ON true
    ), seq AS (                    -- each account's rows from there, read through (account_id, created_at)
        SELECT r.account_id, r.txn_id, r.created_at, r.status, r.amount, r.device_id,
               ((r.created_at >= $2 AND r.created_at < $3) OR (r.updated_at >= $2 AND r.updated_at < $3)) AS is_new,
               count(*) FILTER (WHERE r.status = 'success')
                   OVER (PARTITION BY r.account_id ORDER BY r.created_at, r.txn_id COLLATE "C") AS run
          FROM start s
          CROSS JOIN LATERAL (
              SELECT t.* FROM monitor.src_transactions t  -- OFFSET 0: a lookup per account, never a hash join
               WHERE t.account_id = s.account_id AND t.created_at >= coalesce(s.t, '-infinity')  -- of the view
                 AND t.created_at < $3 AND t.status IN ('success', 'failed') AND t.is_primary OFFSET 0) r
    ), runs AS (
        SELECT q.account_id,
               array_agg(q.txn_id ORDER BY q.created_at, q.txn_id COLLATE "C") AS ids,
               array_agg(q.created_at ORDER BY q.created_at, q.txn_id COLLATE "C") AS times,
               jsonb_agg(jsonb_build_object('txn_id', q.txn_id, 'created_at', q.created_at, 'amount', q.amount,
                                            'device_id', q.device_id)
                         ORDER BY q.created_at, q.txn_id COLLATE "C") AS rows,
               bool_or(q.is_new) AS any_new
          FROM seq q
         WHERE q.status = 'failed'
         GROUP BY q.account_id, q.run
    ), hits AS (
        SELECT r.*, ($1 ->> 'count')::integer AS n, ($1 ->> 'window')::interval AS w
          FROM runs r
         WHERE r.any_new
    )
    SELECT h.account_id,
           h.ids[1],
           h.ids[1],
           NULL::numeric,
           format('%s consecutive failed transactions on %s from %s to %s', cardinality(h.ids), h.account_id,
                  h.times[1], h.times[cardinality(h.times)]),
           jsonb_build_object(
               'account_id', h.account_id, 'failures', cardinality(h.ids),
               'first_txn_id', h.ids[1], 'first_at', h.times[1], 'last_at', h.times[cardinality(h.times)],
               'transactions', h.rows, 'member_keys', to_jsonb(h.ids),
               'count', h.n, 'window', h.w::text)
      FROM hits h
     WHERE cardinality(h.ids) >= h.n
       AND EXISTS (SELECT FROM generate_series(1, cardinality(h.ids) - h.n + 1) i
                    WHERE h.times[i + h.n - 1] - h.times[i] <= h.w)
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$_$;

COMMENT ON FUNCTION monitor.detect_consecutive_failures(params jsonb, since timestamp with time zone) IS 'consecutive_failures: a maximal run of failed transactions holding `count` within `window`.';

CREATE FUNCTION monitor.detect_detector_health(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    d record;
    last_run monitor.detector_runs;
    last_done timestamptz;
    gap interval;
    cron_fail record;
    has_cron boolean := to_regclass('cron.job_run_details') IS NOT NULL
                        AND monitor.cron_database() = current_database()
                        AND has_table_privilege('cron.job_run_details', 'SELECT');
BEGIN
    FOR d IN SELECT * FROM monitor.detectors
              WHERE enabled AND scheduled AND name <> 'detector_health' ORDER BY name LOOP
        SELECT * INTO last_run FROM monitor.detector_runs r
         WHERE r.detector = d.name AND r.status <> 'skipped' ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1;
        IF FOUND AND last_run.status = 'error' THEN
            RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                format('detector %s failed at %s: %s', d.name, last_run.finished_at, last_run.error),
                jsonb_build_object('detector', d.name, 'problem', 'failed', 'run_id', last_run.run_id,
                                   'started_at', last_run.started_at, 'finished_at', last_run.finished_at,
                                   'error', last_run.error))::monitor.finding;
            CONTINUE;
        END IF;
        gap := monitor.cron_max_gap(d.schedule);
        CONTINUE WHEN gap IS NULL;
        last_done := greatest(last_run.finished_at, d.enabled_at);
        IF now() - last_done > (params ->> 'overdue_factor')::numeric * gap THEN
            RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                format('detector %s has not completed a run since %s (schedule %s)', d.name, last_done, d.schedule),
                jsonb_build_object('detector', d.name, 'problem', 'overdue', 'last_completed', last_run.finished_at,
                                   'enabled_at', d.enabled_at, 'schedule', d.schedule, 'max_gap', gap::text,
                                   'overdue_after', ((params ->> 'overdue_factor')::numeric * gap)::text))::monitor.finding;
            CONTINUE;
        END IF;
        IF has_cron THEN
            EXECUTE $q$SELECT r.status, r.return_message, r.end_time FROM cron.job_run_details r
                        JOIN cron.job j USING (jobid)
                       WHERE j.jobname = 'monitor.' || $1 ORDER BY r.runid DESC LIMIT 1$q$
               INTO cron_fail USING d.name;
            IF cron_fail.status = 'failed' THEN
                RETURN NEXT ROW(d.name, d.name, NULL, NULL,
                    format('pg_cron job monitor.%s failed: %s', d.name, cron_fail.return_message),
                    jsonb_build_object('detector', d.name, 'problem', 'cron_job_failed',
                                       'return_message', cron_fail.return_message,
                                       'end_time', cron_fail.end_time))::monitor.finding;
            END IF;
        END IF;
    END LOOP;
END
$_$;

COMMENT ON FUNCTION monitor.detect_detector_health(params jsonb, since timestamp with time zone) IS 'detector_health: a scheduled detector whose latest run (or pg_cron job) failed, or that is overdue.';

CREATE FUNCTION monitor.detect_duplicate_scan(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    SELECT b.account_id,
           b.ids[1],
           NULL::text,
           NULL::numeric,
           format('card %s scanned %s times in %s (from %s)', b.account_id, cardinality(b.ids),
                  b.times[cardinality(b.times)] - b.times[1], b.times[1]),
           jsonb_build_object(
               'account_id', b.account_id, 'scans', cardinality(b.ids), 'first_scan_id', b.ids[1],
               'first_at', b.times[1], 'last_at', b.times[cardinality(b.times)],
               'scan_ids', to_jsonb(b.ids[1:50]), 'times', to_jsonb(b.times[1:50]),
               'devices', to_jsonb(b.devices[1:50]), 'member_keys', to_jsonb(b.ids),
               'window', $1 ->> 'window', 'min_count', ($1 -> 'min_count'))
      FROM monitor.find_bursts('scans', ($1 ->> 'window')::interval,
                               ($1 ->> 'min_count')::integer, $2, $3, monitor.seen_age($1),
                               ARRAY(SELECT jsonb_array_elements_text(coalesce($1 -> 'exclude', '[]'))) ) b
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity');
END
$_$;

COMMENT ON FUNCTION monitor.detect_duplicate_scan(params jsonb, since timestamp with time zone) IS 'duplicate_scan: a maximal burst of scans of one card, each within `window` of the previous.';

CREATE FUNCTION monitor.detect_failed_debit(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    RETURN QUERY EXECUTE $q$
    WITH failed AS MATERIALIZED (  -- the failed rows of the window first
        SELECT t.*, (age(t.row_xmin) <= $5) IS NOT FALSE AS fresh
          FROM monitor.src_transactions t
         WHERE ((t.created_at >= $2 AND t.created_at < $3) OR (t.updated_at >= $2 AND t.updated_at < $3))
           AND t.status = 'failed' AND t.is_primary
    ), candidates AS MATERIALIZED (  -- the balance evidence: new failed debits, how many of each amount
        SELECT f.txn_id, f.account_id, count(*) OVER (PARTITION BY f.account_id, f.amount) AS same_amount
          FROM failed f
         WHERE $4 = 'difference' AND f.fresh AND f.amount < 0
           AND NOT EXISTS (SELECT FROM monitor.events e
                            WHERE e.detector = 'failed_debit' AND e.dedup_key = f.txn_id)
           AND NOT EXISTS (SELECT FROM monitor.events e
                            WHERE e.detector = 'failed_debit' AND e.subject = f.account_id
                              AND e.status <> 'resolved')
    ), differences AS MATERIALIZED (  -- each candidate's account once, and only when needed
        SELECT a.account_id, a.balance - a.opening_balance - coalesce(s.total, 0) AS diff
          FROM monitor.src_accounts a
          LEFT JOIN LATERAL (SELECT sum(t.amount) AS total FROM monitor.src_transactions t
                              WHERE t.account_id = a.account_id AND t.status = 'success') s ON true
         WHERE a.account_id = ANY (ARRAY(SELECT DISTINCT c.account_id FROM candidates c))
    ), judged AS (
        SELECT f.*,
               CASE $4 WHEN 'balances' THEN f.balance_before - f.balance_after
                       WHEN 'posted' THEN CASE WHEN f.posted AND f.amount < 0 THEN -f.amount END
                       ELSE CASE WHEN c.same_amount = 1 AND d.diff = f.amount THEN -f.amount END END AS lost
          FROM failed f
          LEFT JOIN candidates c ON c.txn_id = f.txn_id AND c.account_id = f.account_id
          LEFT JOIN differences d ON d.account_id = f.account_id
    )
    SELECT t.account_id,
           t.txn_id,
           t.txn_id,
           t.lost,
           CASE $4 WHEN 'balances'
                THEN format('failed transaction %s on %s still took %s (balance %s -> %s)', t.txn_id, t.account_id,
                            t.lost, t.balance_before, t.balance_after)
                WHEN 'posted'
                THEN format('failed transaction %s on %s still took %s (it was posted)', t.txn_id, t.account_id, t.lost)
                ELSE format('failed transaction %s on %s still took %s (the balance lacks exactly its amount)',
                            t.txn_id, t.account_id, t.lost) END,
           jsonb_build_object(
               'txn_id', t.txn_id, 'account_id', t.account_id, 'status', t.status, 'amount', t.amount,
               'balance_before', t.balance_before, 'balance_after', t.balance_after,
               'lost', t.lost, 'device_id', t.device_id, 'evidence', $4,
               'created_at', t.created_at, 'updated_at', t.updated_at)
      FROM judged t
     WHERE t.lost > 0
    $q$ USING params, since, coalesce((params ->> 'until')::timestamptz, 'infinity'), monitor.failed_debit_evidence(),
              monitor.seen_age(params);
END
$_$;

COMMENT ON FUNCTION monitor.detect_failed_debit(params jsonb, since timestamp with time zone) IS 'failed_debit: a failed transaction that still took money (its balances, its posted mark, or its account''s balance).';

CREATE FUNCTION monitor.detect_failure_rate(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    head_ok bigint;      -- the rows of the window's partial first minute
    head_failed bigint;
BEGIN
    -- a one-shot plan per run: the planner sees the actual window (an index range scan)
    EXECUTE $q$
    SELECT count(*) FILTER (WHERE t.status = 'success'), count(*) FILTER (WHERE t.status = 'failed')
      FROM monitor.src_transactions t
     WHERE t.created_at >= $1 - ($2 ->> 'window')::interval
       AND t.created_at < date_trunc('minute', $1 - ($2 ->> 'window')::interval) + interval '1 minute'
       AND t.created_at <= $1 AND t.is_primary $q$
    INTO head_ok, head_failed USING now(), params;
    RETURN QUERY
    WITH c AS (
        SELECT head_ok + coalesce(sum(m.succeeded), 0) AS ok, head_failed + coalesce(sum(m.failed), 0) AS failed
          FROM monitor.failure_minutes m
         WHERE m.minute > date_trunc('minute', now() - (params ->> 'window')::interval)
    )
    SELECT 'system', 'system', NULL::text, NULL::numeric,
           format('%s of %s transactions failed in the last %s (%s%%, threshold %s%%)', c.failed, c.ok + c.failed,
                  params ->> 'window', round(100.0 * c.failed / (c.ok + c.failed), 1),
                  round(100 * (params ->> 'threshold')::numeric, 1)),
           jsonb_build_object('failed', c.failed, 'succeeded', c.ok, 'total', c.ok + c.failed,
                              'rate', round(c.failed::numeric / (c.ok + c.failed), 4),
                              'window', params ->> 'window', 'threshold', params -> 'threshold',
                              'min_volume', params -> 'min_volume', 'from', now() - (params ->> 'window')::interval,
                              'to', now())
      FROM c
     WHERE c.ok + c.failed >= (params ->> 'min_volume')::numeric
       AND c.ok + c.failed > 0
       AND c.failed::numeric / (c.ok + c.failed) > (params ->> 'threshold')::numeric;
END
$_$;

COMMENT ON FUNCTION monitor.detect_failure_rate(params jsonb, since timestamp with time zone) IS 'failure_rate: failed/(success+failed) over the trailing window above threshold, with min_volume.';

CREATE FUNCTION monitor.detect_negative_balance(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    report text := $r$
    SELECT a.account_id, a.account_id, NULL::text, a.balance,
           format('account %s has a negative balance of %s', a.account_id, a.balance),
           jsonb_build_object('account_id', a.account_id, 'balance', a.balance,
                              'opening_balance', a.opening_balance, 'updated_at', a.updated_at) $r$;
BEGIN
    IF NOT params ? 'seen' THEN
        RETURN QUERY EXECUTE report || $q$ FROM monitor.src_accounts a WHERE a.balance < 0 AND NOT a.allow_negative $q$;
    ELSE
        -- a one-shot plan per run: the planner sees the actual window (index range scans)
        RETURN QUERY EXECUTE $q$
        WITH cand AS (
            SELECT a.account_id FROM monitor.src_accounts a
             WHERE $2 AND a.updated_at >= $1 AND (age(a.row_xmin) <= $3) IS NOT FALSE
            UNION
            SELECT t.account_id FROM monitor.src_transactions t
             WHERE NOT $2 AND (t.created_at >= $1 OR t.updated_at >= $1)
            UNION
            SELECT o.account_id FROM unnest($4::text[]) AS o(account_id)
        )$q$ || report || $q$ FROM cand c JOIN monitor.src_accounts a ON a.account_id = c.account_id
         WHERE a.balance < 0 AND NOT a.allow_negative $q$
        USING since, monitor.accounts_have_updated_at(), monitor.seen_age(params),
              ARRAY(SELECT e.subject FROM monitor.events e
                     WHERE e.detector = 'negative_balance' AND e.status <> 'resolved');
    END IF;
END
$_$;

COMMENT ON FUNCTION monitor.detect_negative_balance(params jsonb, since timestamp with time zone) IS 'negative_balance: an account whose balance is below zero.';

CREATE FUNCTION monitor.detect_stuck_pending(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    report text := $r$
    SELECT t.account_id, t.txn_id, t.txn_id, t.amount,
           format('transaction %s on %s pending for %s', t.txn_id, t.account_id,
                  date_trunc('second', $3 - t.created_at)),
           jsonb_build_object('txn_id', t.txn_id, 'account_id', t.account_id, 'amount', t.amount,
                              'status', t.status, 'created_at', t.created_at, 'device_id', t.device_id,
                              'pending_for', ($3 - t.created_at)::text, 'age', $1 ->> 'age') $r$;
BEGIN
    IF NOT params ? 'seen' THEN
        -- a one-shot plan per run: the planner sees the actual time (an index range scan)
        RETURN QUERY EXECUTE report || $q$
          FROM monitor.src_transactions t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < $3 - ($1 ->> 'age')::interval $q$ USING params, since, now();
    ELSE
        RETURN QUERY EXECUTE report || $q$
          FROM (SELECT DISTINCT ON (c.txn_id) c.* FROM (
                    SELECT t.* FROM monitor.src_transactions t
                     WHERE t.created_at >= $2 - ($1 ->> 'age')::interval
                       AND t.created_at < $3 - ($1 ->> 'age')::interval
                    UNION ALL
                    SELECT t.* FROM monitor.src_transactions t
                     WHERE t.txn_id = ANY ($4)) c
                 ORDER BY c.txn_id, c.is_primary DESC) t
         WHERE t.status = 'pending' AND t.is_primary
           AND t.created_at < $3 - ($1 ->> 'age')::interval $q$
        USING params, since, now(),
              ARRAY(SELECT e.txn_id FROM monitor.events e
                     WHERE e.detector = 'stuck_pending' AND e.status <> 'resolved' AND e.txn_id IS NOT NULL);
    END IF;
END
$_$;

COMMENT ON FUNCTION monitor.detect_stuck_pending(params jsonb, since timestamp with time zone) IS 'stuck_pending: a transaction created more than `age` before the run and still pending.';

CREATE FUNCTION monitor.detect_volume_anomaly(params jsonb, since timestamp with time zone) RETURNS SETOF monitor.finding
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT * FROM monitor.volume_anomaly_at(params,
        date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '1 hour')
$$;

COMMENT ON FUNCTION monitor.detect_volume_anomaly(params jsonb, since timestamp with time zone) IS 'volume_anomaly: last complete UTC hour''s count vs the same hour of the week in the baseline.';

CREATE FUNCTION monitor.detector_function_problem(p_fn regprocedure) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    p record;
    path text;
    entry text;
    problem text;
BEGIN
    SELECT pr.proretset AND pr.prorettype = 'monitor.finding'::regtype AS returns_findings,
           pr.proowner, n.nspname,
           (SELECT substr(c, length('search_path=') + 1) FROM unnest(pr.proconfig) c
             WHERE c LIKE 'search_path=%' LIMIT 1) AS search_path
      INTO p
      FROM pg_proc pr JOIN pg_namespace n ON n.oid = pr.pronamespace
     WHERE pr.oid = p_fn;
    IF NOT FOUND THEN
        RETURN format('function %s does not exist', p_fn);
    ELSIF NOT p.returns_findings THEN
        RETURN format('function %s must return SETOF monitor.finding', p_fn);
    ELSIF NOT monitor.trusted_role(p.proowner) THEN
        RETURN format('function %s is owned by %s: a detector function runs with monitor''s rights, so it must be '
                      'owned by %s (the owner of schema monitor) or by a superuser', p_fn, p.proowner::regrole,
                      (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'monitor'));
    END IF;
    problem := monitor.schema_problem(p.nspname);
    IF problem IS NOT NULL THEN
        RETURN format('function %s cannot be trusted: %s', p_fn, problem);
    END IF;
    path := p.search_path;
    IF path IS NULL OR path !~ '(^|,)\s*"?pg_temp"?\s*$' THEN
        RETURN format('function %s must pin its search_path with pg_temp last '
                      '(ALTER FUNCTION %s SET search_path = pg_catalog, monitor, pg_temp)', p_fn, p_fn);
    END IF;
    FOREACH entry IN ARRAY string_to_array(path, ',') LOOP
        entry := btrim(btrim(entry), '"');
        CONTINUE WHEN entry IN ('pg_temp', 'pg_catalog');
        problem := monitor.schema_problem(entry);
        IF problem IS NOT NULL THEN
            RETURN format('function %s cannot be trusted: its search_path names schema %s, and %s', p_fn, entry,
                          problem);
        END IF;
    END LOOP;
    RETURN NULL;
END
$_$;

CREATE FUNCTION monitor.detector_problems() RETURNS SETOF monitor.finding
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT * FROM monitor.detect_detector_health(
        coalesce((SELECT d.params FROM monitor.detectors d WHERE d.name = 'detector_health'),
                 monitor.common_params('condition') || '{"overdue_factor": 3}'), now())
$$;

COMMENT ON FUNCTION monitor.detector_problems() IS 'Detectors failing or overdue now, as detector_health judges them (for monitorctl status).';

CREATE FUNCTION monitor.detectors_touch() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    IF (NEW.enabled AND NOT OLD.enabled) OR (NEW.scheduled AND NOT coalesce(OLD.scheduled, false)) THEN
        NEW.enabled_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION monitor.enqueue_deliveries() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.enqueue_due() RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.expire_silence(p_silence_id bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.failed_debit_evidence() RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT 'balances'::text
$$;

CREATE FUNCTION monitor.find_bursts(p_source text, p_window interval, p_min_count integer, p_since timestamp with time zone, p_until timestamp with time zone DEFAULT 'infinity'::timestamp with time zone, p_seen integer DEFAULT 2147483647, p_exclude text[] DEFAULT '{}'::text[]) RETURNS TABLE(account_id text, ids text[], times timestamp with time zone[], devices text[], amounts numeric[], statuses text[])
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    rel text;
    id_col text;
    t_col text;
    extra text;
    b record;
    seen integer := coalesce(p_seen, 2147483647);
    first_new timestamptz;
    back_accounts text[] := '{}';
    more text[];
    lookback interval := p_window * 64;
    lo timestamptz;
BEGIN
    IF p_source = 'scans' THEN
        rel := 'monitor.src_scans'; id_col := 'scan_id'; t_col := 'scanned_at';
        extra := 'NULL::numeric AS amount, NULL::text AS status';
    ELSIF p_source IN ('transactions', 'debits') THEN
        -- with both sides watched, a transfer's two legs are rows of their own (txn_id:debit,
        -- txn_id:credit): a payer's burst and a payee's never share an id, nor a self-transfer's legs
        rel := CASE p_source WHEN 'debits' THEN '(SELECT * FROM monitor.src_transactions t WHERE t.is_debit)'
                             ELSE '(SELECT t.account_id, CASE WHEN t.leg IS NULL THEN t.txn_id ELSE t.txn_id || '':'' || t.leg END'
                                  ' AS txn_id, t.created_at, t.device_id, t.amount, t.status, t.row_xmin'
                                  ' FROM monitor.src_transactions t)' END;
        id_col := 'txn_id'; t_col := 'created_at';
        extra := 'r.amount, r.status';
    ELSE
        RAISE EXCEPTION 'unknown burst source %', p_source;
    END IF;
    -- 0. The earliest fresh row: at or after since, not seen by the previous run. Under a stream,
    --    the rows of the late window were seen and this is about the previous run's time.
    EXECUTE format('SELECT min(r.%2$I) FROM %1$s r WHERE r.%2$I >= $1 AND r.%2$I < $3'
                   ' AND (age(r.row_xmin) <= $2) IS NOT FALSE AND r.account_id <> ALL ($4)', rel, t_col)
        INTO first_new USING p_since, seen, p_until, coalesce(p_exclude, '{}');
    IF first_new IS NULL THEN
        RETURN;
    END IF;
    -- 1. One range scan from that row's time - window: it holds every row a burst reaching a fresh
    --    row can have, unless the burst started before it (then its earlier rows may lie further back).
    --    The range is read twice (NOT MATERIALIZED), once to find the accounts with a fresh row and a
    --    neighbour, once for their rows: no slower than writing it to a CTE and reading that back,
    --    and a CTE read twice would be gathered on a Citus coordinator instead of staying on the shards.
    FOR b IN EXECUTE format($q$
        WITH win AS NOT MATERIALIZED (
            SELECT r.account_id, r.%3$I AS id, r.%2$I AS t, r.device_id, %4$s,
                   r.%2$I >= $1 AND r.%2$I < $6 AND (age(r.row_xmin) <= $4) IS NOT FALSE AS fresh  -- not seen before
              FROM %1$s r WHERE r.%2$I >= $5 - $2 AND r.%2$I < $6 + $2  -- a backfill's slice ends at $6
               AND r.account_id <> ALL ($7)  -- excluded subjects: not followed at all (a system account)
        ), fresh AS (              -- an account alone in the range has no neighbour within the window
            SELECT w.account_id FROM win w GROUP BY w.account_id HAVING bool_or(w.fresh) AND count(*) >= 2
        ), gaps AS (               -- one sort: each row's distance to its neighbours
            SELECT w.*, w.t - lag(w.t) OVER o AS gap_before, lead(w.t) OVER o - w.t AS gap_after
              FROM win w JOIN fresh f ON f.account_id = w.account_id
            WINDOW o AS (PARTITION BY w.account_id ORDER BY w.t, w.id COLLATE "C")
        ), marked AS (             -- only rows with a neighbour within the window can be in a burst
            SELECT g.*, CASE WHEN g.gap_before IS NULL OR g.gap_before > $2 THEN 1 ELSE 0 END AS starts
              FROM gaps g
             WHERE g.gap_before <= $2 OR g.gap_after <= $2
        ), numbered AS (
            SELECT m.*, sum(m.starts) OVER (PARTITION BY m.account_id ORDER BY m.t, m.id COLLATE "C") AS burst
              FROM marked m
        )
        SELECT n.account_id,
               array_agg(n.id ORDER BY n.t, n.id COLLATE "C") AS ids,
               array_agg(n.t ORDER BY n.t, n.id COLLATE "C") AS times,
               array_agg(n.device_id ORDER BY n.t, n.id COLLATE "C") AS devices,
               array_agg(n.amount ORDER BY n.t, n.id COLLATE "C") AS amounts,
               array_agg(n.status ORDER BY n.t, n.id COLLATE "C") AS statuses
          FROM numbered n
         GROUP BY n.account_id, n.burst
        HAVING bool_or(n.fresh) AND (count(*) >= $3 OR min(n.t) < $5)
    $q$, rel, t_col, id_col, extra) USING p_since, p_window, greatest(p_min_count, 2), seen, first_new, p_until,
                                          coalesce(p_exclude, '{}')
    LOOP
        IF b.times[1] >= first_new THEN
            account_id := b.account_id; ids := b.ids; times := b.times; devices := b.devices;
            amounts := b.amounts; statuses := b.statuses;
            RETURN NEXT;
        ELSE  -- at most one such burst per account: a burst starting in [first_new - window, first_new)
            back_accounts := back_accounts || b.account_id;  -- is the only one starting before first_new
        END IF;
    END LOOP;
    -- 2. The few bursts that started before first_new: each is its account's earliest burst holding a
    --    fresh row. Read those accounts from further back, the lookback doubling each round, until each
    --    burst's first row has nothing within the window before it that the round could have missed
    --    (a round reads each account through (account_id, time) from lo on; the bursts found early
    --    are reported, the others read again from further back). No recursive query: on Citus one
    --    runs on a single shard only.
    lo := first_new - p_window;
    WHILE cardinality(back_accounts) > 0 LOOP
        lo := lo - lookback;
        lookback := lookback * 2;
        more := '{}';
        FOR b IN EXECUTE format($q$
            WITH marked AS (
                SELECT r.account_id, r.%3$I AS id, r.%2$I AS t, r.device_id, %4$s,
                       r.%2$I >= $1 AND r.%2$I < $6 AND (age(r.row_xmin) <= $7) IS NOT FALSE AS fresh,
                       CASE WHEN lag(r.%2$I) OVER o IS NULL OR r.%2$I - lag(r.%2$I) OVER o > $2
                            THEN 1 ELSE 0 END AS starts
                  FROM %1$s r
                 WHERE r.account_id = ANY ($4) AND r.%2$I >= $5 AND r.%2$I < $6 + $2
                WINDOW o AS (PARTITION BY r.account_id ORDER BY r.%2$I, r.%3$I COLLATE "C")
            ), numbered AS (
                SELECT m.*, sum(m.starts) OVER (PARTITION BY m.account_id ORDER BY m.t, m.id COLLATE "C") AS burst
                  FROM marked m
            ), bursts AS (         -- the bursts holding a fresh row, and which is each account's earliest
                SELECT n.account_id,
                       array_agg(n.id ORDER BY n.t, n.id COLLATE "C") AS ids,
                       array_agg(n.t ORDER BY n.t, n.id COLLATE "C") AS times,
                       array_agg(n.device_id ORDER BY n.t, n.id COLLATE "C") AS devices,
                       array_agg(n.amount ORDER BY n.t, n.id COLLATE "C") AS amounts,
                       array_agg(n.status ORDER BY n.t, n.id COLLATE "C") AS statuses,
                       n.burst = min(n.burst) OVER (PARTITION BY n.account_id) AS earliest
                  FROM numbered n
                 GROUP BY n.account_id, n.burst
                HAVING bool_or(n.fresh)
            )
            SELECT b.*, b.times[1] - $2 >= $5 OR NOT isfinite(b.times[1]) AS complete
              FROM bursts b
             WHERE b.earliest
        $q$, rel, t_col, id_col, extra)
        USING p_since, p_window, p_min_count, back_accounts, lo, p_until, seen
        LOOP
            IF NOT b.complete THEN
                more := more || b.account_id;
            ELSIF cardinality(b.ids) >= p_min_count THEN
                account_id := b.account_id; ids := b.ids; times := b.times; devices := b.devices;
                amounts := b.amounts; statuses := b.statuses;
                RETURN NEXT;
            END IF;
        END LOOP;
        back_accounts := more;
    END LOOP;
END
$_$;

COMMENT ON FUNCTION monitor.find_bursts(p_source text, p_window interval, p_min_count integer, p_since timestamp with time zone, p_until timestamp with time zone, p_seen integer, p_exclude text[]) IS 'Maximal bursts (each row within the window of the previous) that reach a row at or after since (and before until: a backfill''s slice); rows of transactions older than p_seen are context only; the accounts of p_exclude are left out.';

CREATE FUNCTION monitor.fold_digests() RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.function_digest(p_fn regprocedure) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT md5(concat_ws(E'\x1f', p.oid, p.proowner, p.prosecdef, p.provolatile, p.prolang, p.prokind,
                         p.proconfig::text, p.prosrc, p.probin, p.prorettype, p.proretset))
      FROM pg_proc p WHERE p.oid = p_fn
$$;

CREATE FUNCTION monitor.glob_like(p_glob text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT replace(replace(replace(replace(replace(p_glob, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
$$;

CREATE TABLE monitor.deliveries (
    delivery_id bigint NOT NULL,
    idempotency_key uuid DEFAULT gen_random_uuid() NOT NULL,
    event_id bigint,
    detector text NOT NULL,
    transition text NOT NULL,
    receiver text NOT NULL,
    route_id bigint,
    status text DEFAULT 'pending'::text NOT NULL,
    digest_id bigint,
    digest jsonb,
    attempts integer DEFAULT 0 NOT NULL,
    due_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_until timestamp with time zone,
    leased_by text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone,
    last_error text,
    CONSTRAINT deliveries_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'failed'::text, 'sent'::text, 'dead'::text, 'suppressed'::text, 'digested'::text]))),
    CONSTRAINT deliveries_transition_check CHECK ((transition = ANY (ARRAY['opened'::text, 'severity_changed'::text, 'acknowledged'::text, 'resolved'::text, 'auto_resolved'::text, 'repeat'::text, 'escalated'::text, 'digest'::text])))
);

COMMENT ON TABLE monitor.deliveries IS 'The outbox: one row per transition and receiver, enqueued in the transition''s transaction';

CREATE FUNCTION monitor.in_turn(q monitor.deliveries) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT q.event_id IS NULL OR NOT EXISTS (
        SELECT FROM monitor.deliveries p
          LEFT JOIN monitor.deliveries g ON g.delivery_id = p.digest_id  -- folded into a digest: its turn
         WHERE p.event_id = q.event_id AND p.receiver = q.receiver AND p.delivery_id < q.delivery_id
           AND (p.status IN ('pending', 'failed') OR (p.status = 'digested' AND g.status IN ('pending', 'failed'))))
$$;

CREATE FUNCTION monitor.interval_ms(p_interval text) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$ SELECT round(extract(epoch FROM p_interval::interval) * 1000)::bigint || 'ms' $$;

CREATE FUNCTION monitor.lock_unresolved(p_event_ids bigint[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE TABLE monitor.events (
    event_id bigint NOT NULL,
    detector text NOT NULL,
    kind text NOT NULL,
    severity text NOT NULL,
    status text DEFAULT 'open'::text NOT NULL,
    subject text NOT NULL,
    dedup_key text NOT NULL,
    txn_id text,
    amount numeric,
    summary text NOT NULL,
    evidence jsonb DEFAULT '{}'::jsonb NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    occurrences integer DEFAULT 1 NOT NULL,
    acknowledged_at timestamp with time zone,
    acknowledged_by text,
    resolved_at timestamp with time zone,
    resolved_by text,
    resolution_note text,
    changed_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT events_check CHECK (((status = 'resolved'::text) = (resolved_at IS NOT NULL))),
    CONSTRAINT events_kind_check CHECK ((kind = ANY (ARRAY['finding'::text, 'condition'::text]))),
    CONSTRAINT events_severity_check CHECK ((severity = ANY (ARRAY['critical'::text, 'high'::text, 'medium'::text, 'low'::text]))),
    CONSTRAINT events_status_check CHECK ((status = ANY (ARRAY['open'::text, 'acknowledged'::text, 'resolved'::text])))
)
WITH (fillfactor='80');

CREATE FUNCTION monitor.log_transition(p_event monitor.events, p_transition text, p_actor text, p_note text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO monitor.alert_history (event_id, transition, actor, note, detector, severity, subject, summary)
    VALUES (p_event.event_id, p_transition, p_actor, p_note, p_event.detector, p_event.severity,
            p_event.subject, p_event.summary);
    PERFORM pg_notify('monitor_events', json_build_object(
        'event_id', p_event.event_id, 'detector', p_event.detector, 'severity', p_event.severity,
        'transition', p_transition)::text);
END
$$;

CREATE TABLE monitor.routes (
    route_id bigint NOT NULL,
    "position" integer NOT NULL,
    receiver text NOT NULL,
    min_severity text DEFAULT 'low'::text NOT NULL,
    detectors text[],
    subject_glob text,
    repeat_every interval,
    send_resolved boolean DEFAULT true NOT NULL,
    continue_after boolean DEFAULT false NOT NULL,
    escalate_after interval,
    escalate_to text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT routes_check CHECK (((escalate_after IS NULL) = (escalate_to IS NULL))),
    CONSTRAINT routes_min_severity_check CHECK ((min_severity = ANY (ARRAY['critical'::text, 'high'::text, 'medium'::text, 'low'::text])))
);

COMMENT ON TABLE monitor.routes IS 'Which transitions go to which receiver: in position order, the first match wins unless continue_after';

CREATE FUNCTION monitor.matching_routes(p_detector text, p_severity text, p_subject text) RETURNS SETOF monitor.routes
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.param_interval(p_params jsonb, p_key text) RETURNS interval
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$ SELECT (p_params ->> p_key)::interval $$;

CREATE FUNCTION monitor.param_rule(p_detector text, p_key text, p_default jsonb, OUT kind text, OUT lo text, OUT hi text) RETURNS record
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.prepare_balance_mismatch(params jsonb, since timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    old_h timestamptz;
    new_h timestamptz := now() - monitor.balance_horizon_lag();
BEGIN
    SELECT high_water INTO old_h FROM monitor.watermarks WHERE detector = 'balance_mismatch.horizon';
    -- EXECUTE: a one-shot plan that sees the actual time range (statements below read the source)
    IF NOT params ? 'seen' OR old_h IS NULL
       OR NOT EXISTS (SELECT FROM monitor.account_totals) THEN  -- empty: a crash emptied the unlogged cache
        -- full pass: recompute every total in one sequential pass with an in-memory hash aggregate
        -- (not in (account_id, created_at) index order, which visits the heap at random), and write
        -- only the totals that differ from the stored ones. The sums are a query of their own
        -- (MATERIALIZED): on a distributed ledger the shards compute them, and only the per-account
        -- results meet the totals, which stay on the coordinator.
        PERFORM set_config('work_mem', '256MB', true);
        EXECUTE 'WITH fresh AS MATERIALIZED (
                     SELECT t.account_id, sum(t.amount) AS success_sum FROM monitor.src_transactions t
                      WHERE t.status = ''success'' AND t.created_at < $1
                      GROUP BY t.account_id
                 ), drift AS MATERIALIZED (
                     SELECT coalesce(f.account_id, o.account_id) AS account_id, f.success_sum
                       FROM fresh f FULL JOIN monitor.account_totals o ON o.account_id = f.account_id
                      WHERE f.success_sum IS DISTINCT FROM o.success_sum
                 ), gone AS (
                     DELETE FROM monitor.account_totals a USING drift d
                      WHERE a.account_id = d.account_id AND d.success_sum IS NULL
                 )
                 INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                 SELECT d.account_id, d.success_sum FROM drift d WHERE d.success_sum IS NOT NULL
                 ON CONFLICT (account_id) DO UPDATE SET success_sum = excluded.success_sum' USING new_h;
    ELSE
        IF new_h > old_h THEN
            EXECUTE 'INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                     SELECT t.account_id, sum(t.amount) FROM monitor.src_transactions t
                      WHERE t.status = ''success'' AND t.created_at >= $1 AND t.created_at < $2
                      GROUP BY t.account_id
                     ON CONFLICT (account_id) DO UPDATE SET success_sum = a.success_sum + excluded.success_sum'
                USING old_h, new_h;
        ELSE
            new_h := old_h;
        END IF;
        -- rows created before the old horizon and changed since (pending -> success, say): recount
        -- those accounts from their rows. One query over the source alone, joined on account_id, so
        -- that on a distributed ledger each shard recounts its own accounts; its few rows are then
        -- written here.
        EXECUTE 'INSERT INTO monitor.account_totals AS a (account_id, success_sum)
                 SELECT c.account_id, coalesce(s.success_sum, 0)
                   FROM (SELECT DISTINCT t.account_id FROM monitor.src_transactions t
                          WHERE t.updated_at >= $1 AND t.created_at < $2) c
                   LEFT JOIN LATERAL (SELECT t.account_id, sum(t.amount) AS success_sum
                                        FROM monitor.src_transactions t
                                       WHERE t.account_id = c.account_id AND t.status = ''success''
                                         AND t.created_at < $3
                                       GROUP BY t.account_id) s ON true
                 ON CONFLICT (account_id) DO UPDATE SET success_sum = excluded.success_sum'
            USING since - monitor.balance_horizon_lag(), old_h, new_h;
    END IF;
    INSERT INTO monitor.watermarks AS w (detector, high_water) VALUES ('balance_mismatch.horizon', new_h)
    ON CONFLICT (detector) DO UPDATE SET high_water = excluded.high_water, updated_at = now();
END
$_$;

COMMENT ON FUNCTION monitor.prepare_balance_mismatch(params jsonb, since timestamp with time zone) IS 'Bring monitor.account_totals up to date before balance_mismatch runs (a full rebuild without `seen`).';

CREATE FUNCTION monitor.prepare_failure_rate(params jsonb, since timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    lo timestamptz := date_trunc('minute', now() - (params ->> 'window')::interval);
    changed timestamptz[];
    touched timestamptz[];
    run_lo timestamptz[];
    run_hi timestamptz[];
    i integer;
BEGIN
    DELETE FROM monitor.failure_minutes m WHERE m.minute < lo;
    IF NOT params ? 'seen' OR NOT monitor.transactions_have_updated_at()
       OR NOT EXISTS (SELECT FROM monitor.failure_minutes) THEN  -- empty: a crash emptied the cache
        DELETE FROM monitor.failure_minutes;
        -- EXECUTE: a one-shot plan that sees the actual time range
        EXECUTE $q$
        INSERT INTO monitor.failure_minutes (minute, succeeded, failed)
        SELECT date_trunc('minute', t.created_at), count(*) FILTER (WHERE t.status = 'success'),
               count(*) FILTER (WHERE t.status = 'failed')
          FROM monitor.src_transactions t
         WHERE t.created_at >= $1 AND t.created_at <= $2 AND t.is_primary
         GROUP BY 1 $q$ USING lo, now();
    ELSE
        -- the older minutes of the rows changed since `since`
        EXECUTE $q$
        SELECT coalesce(array_agg(c.minute), '{}') FROM (
            SELECT DISTINCT date_trunc('minute', t.created_at) AS minute FROM monitor.src_transactions t
             WHERE t.updated_at >= $1 AND t.created_at >= $2 AND t.created_at < $1) c $q$
        INTO changed USING since, lo;
        touched := ARRAY(SELECT c.minute FROM unnest(changed) AS c(minute)
                         UNION  -- (each minute once: it is counted once)
                         SELECT generate_series(date_trunc('minute', greatest(since, lo)), date_trunc('minute', now()),
                                                interval '1 minute'));
        DELETE FROM monitor.failure_minutes f WHERE f.minute = ANY (touched);
        -- the touched minutes as runs of consecutive minutes [run_lo, run_hi) (the late window's is one),
        -- each counted by a statement of its own: an index range scan over a known range, whatever the
        -- statistics say (a join with the list of runs may be planned as a scan of the whole table)
        SELECT coalesce(array_agg(r.lo), '{}'), coalesce(array_agg(r.hi), '{}') INTO run_lo, run_hi
          FROM (SELECT min(x.minute) AS lo, max(x.minute) + interval '1 minute' AS hi
                  FROM (SELECT c.minute, c.minute - make_interval(mins => (row_number() OVER (ORDER BY c.minute))::integer)
                                   AS island
                          FROM unnest(touched) AS c(minute)) x
                 GROUP BY x.island) r;
        FOR i IN 1 .. cardinality(run_lo) LOOP
            EXECUTE $q$
            INSERT INTO monitor.failure_minutes (minute, succeeded, failed)
            SELECT date_trunc('minute', t.created_at), count(*) FILTER (WHERE t.status = 'success'),
                   count(*) FILTER (WHERE t.status = 'failed')
              FROM monitor.src_transactions t
             WHERE t.created_at >= $1 AND t.created_at < $2 AND t.created_at <= $3 AND t.is_primary
             GROUP BY 1
            HAVING count(*) FILTER (WHERE t.status IN ('success', 'failed')) > 0 $q$ USING run_lo[i], run_hi[i], now();
        END LOOP;
    END IF;
END
$_$;

COMMENT ON FUNCTION monitor.prepare_failure_rate(params jsonb, since timestamp with time zone) IS 'Bring monitor.failure_minutes up to date before failure_rate runs (the whole window without `seen`).';

CREATE FUNCTION monitor.prepare_volume_anomaly(params jsonb, since timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    IF coalesce((SELECT high_water FROM monitor.watermarks WHERE detector = 'volume_anomaly.baseline'), '-infinity')
       < date_trunc('hour', now()) THEN
        PERFORM monitor.refresh_volume_baseline();
    END IF;
END
$$;

CREATE PROCEDURE monitor.prune(IN dry_run boolean DEFAULT false, IN events_days integer DEFAULT NULL::integer, IN history_days integer DEFAULT NULL::integer, INOUT events bigint DEFAULT NULL::bigint, INOUT alert_history bigint DEFAULT NULL::bigint, INOUT health_snapshots bigint DEFAULT NULL::bigint, INOUT detector_runs bigint DEFAULT NULL::bigint, INOUT deliveries bigint DEFAULT NULL::bigint)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_tables text[];
    v_counts bigint[];
    v_cut timestamptz;
    v_batch integer;
    n bigint;
    i integer;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
    v_tables := ARRAY['events', 'alert_history', 'health_snapshots', 'detector_runs', 'deliveries'];
    v_counts := ARRAY[0, 0, 0, 0, 0];
    v_batch := coalesce((monitor.setting('retention.batch_size') #>> '{}')::integer, 5000);
    IF v_batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'retention.batch_size must be from 1 to 1000000, not %', v_batch USING ERRCODE = '22023';
    END IF;
    FOR i IN 1 .. 5 LOOP
        v_cut := monitor.retention_cut(v_tables[i], CASE v_tables[i] WHEN 'events' THEN events_days
                                                                      WHEN 'alert_history' THEN history_days
                                                                      WHEN 'deliveries' THEN history_days END);
        LOOP
            n := monitor.prune_batch(v_tables[i], v_cut, v_batch, dry_run);
            v_counts[i] := v_counts[i] + n;
            COMMIT;
            PERFORM pg_catalog.set_config('search_path', 'pg_catalog, monitor, pg_temp', true);
            EXIT WHEN dry_run OR n < v_batch;
        END LOOP;
    END LOOP;
    events := v_counts[1]; alert_history := v_counts[2]; health_snapshots := v_counts[3];
    detector_runs := v_counts[4]; deliveries := v_counts[5];
END
$$;

COMMENT ON PROCEDURE monitor.prune(IN dry_run boolean, IN events_days integer, IN history_days integer, INOUT events bigint, INOUT alert_history bigint, INOUT health_snapshots bigint, INOUT detector_runs bigint, INOUT deliveries bigint) IS 'Retention in bounded batches (docs/operations.md); CALL monitor.prune(dry_run => true) only counts.';

CREATE FUNCTION monitor.prune_batch(p_table text, p_cut timestamp with time zone, p_limit integer, p_dry_run boolean) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    v_table text;
    v_key text;
    v_join text := '';
    v_where text;
    n bigint;
BEGIN
    CASE p_table
        WHEN 'events' THEN
            v_table := 'monitor.events'; v_key := 'event_id';
            v_where := $w$t.status = 'resolved' AND t.resolved_at < $1$w$;
        WHEN 'alert_history' THEN
            v_table := 'monitor.alert_history'; v_key := 'history_id'; v_where := 't.created_at < $1';
        WHEN 'deliveries' THEN  -- the notifications sent (or given up) with their attempts
            v_table := 'monitor.deliveries'; v_key := 'delivery_id';
            v_where := $w$t.created_at < $1 AND t.status NOT IN ('pending', 'failed')$w$;
        WHEN 'health_snapshots' THEN
            v_table := 'monitor.health_snapshots'; v_key := 'snapshot_id'; v_where := 't.taken_at < $1';
        WHEN 'detector_runs' THEN
            v_table := 'monitor.detector_runs'; v_key := 'run_id'; v_where := 't.started_at < $1';
        ELSE
            RAISE EXCEPTION 'unknown retention table %', p_table USING ERRCODE = '22023';
    END CASE;
    IF p_dry_run THEN
        EXECUTE format('SELECT count(*) FROM %s t%s WHERE %s', v_table, v_join, v_where) INTO n USING p_cut;
    ELSE
        EXECUTE format('DELETE FROM %1$s WHERE %2$I IN (SELECT t.%2$I FROM %1$s t%3$s WHERE %4$s LIMIT $2)',
                       v_table, v_key, v_join, v_where)
            USING p_cut, p_limit;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    RETURN n;
END
$_$;

CREATE FUNCTION monitor.receiver_has_secret(p_name text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT r.secret IS NOT NULL FROM monitor.receivers r WHERE r.name = p_name
$$;

CREATE FUNCTION monitor.record_attempt(p_delivery_id bigint, p_worker text, p_attempt integer, p_ok boolean, p_started timestamp with time zone, p_latency_ms numeric, p_status_code integer DEFAULT NULL::integer, p_reply text DEFAULT NULL::text, p_retry boolean DEFAULT true, p_retry_after interval DEFAULT NULL::interval) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.refresh() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    PERFORM monitor.refresh_volume_baseline();
END
$$;

COMMENT ON FUNCTION monitor.refresh() IS 'Refresh monitor''s materialized views (CONCURRENTLY once populated).';

CREATE FUNCTION monitor.refresh_volume_baseline() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    IF (SELECT ispopulated FROM pg_matviews WHERE schemaname = 'monitor' AND matviewname = 'volume_hourly') THEN
        REFRESH MATERIALIZED VIEW CONCURRENTLY monitor.volume_hourly;
    ELSE
        REFRESH MATERIALIZED VIEW monitor.volume_hourly;
    END IF;
    INSERT INTO monitor.watermarks AS w (detector, high_water) VALUES ('volume_anomaly.baseline', now())
    ON CONFLICT (detector) DO UPDATE SET high_water = excluded.high_water, updated_at = now();
END
$$;

CREATE FUNCTION monitor.register_detector(p_name text, p_function text, p_severity text, p_kind text, p_schedule text DEFAULT '* * * * *'::text, p_params jsonb DEFAULT '{}'::jsonb, p_description text DEFAULT ''::text) RETURNS monitor.detectors
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
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
$_$;

COMMENT ON FUNCTION monitor.register_detector(p_name text, p_function text, p_severity text, p_kind text, p_schedule text, p_params jsonb, p_description text) IS 'Register a custom detector: FUNCTION(params jsonb, since timestamptz) RETURNS SETOF monitor.finding. Run monitorctl install (or monitorctl detectors enable NAME) to schedule it in pg_cron.';

CREATE FUNCTION monitor.remove_receiver(p_name text) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.remove_route(p_route_id bigint) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
BEGIN
    DELETE FROM monitor.routes r WHERE r.route_id = p_route_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown route %', p_route_id USING ERRCODE = '22023',
            HINT = 'monitorctl routes list shows the routes';
    END IF;
    RETURN p_route_id;
END
$$;

CREATE FUNCTION monitor.repeat_interval(p_route monitor.routes, p_severity text) RETURNS interval
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT nullif(coalesce(p_route.repeat_every, CASE WHEN p_severity = 'critical' THEN interval '4 hours' END),
                  interval '0')
$$;

CREATE FUNCTION monitor.resolve(p_event_ids bigint[], p_note text DEFAULT NULL::text, p_actor text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION monitor.resolve(p_event_ids bigint[], p_note text, p_actor text) IS 'Resolve events (all or nothing): an unknown or already resolved id changes nothing and raises.';

CREATE FUNCTION monitor.retention_cut(p_table text, p_days integer) RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
DECLARE
    v_key text := CASE p_table WHEN 'events' THEN 'events_days'
                               WHEN 'alert_history' THEN 'history_days' WHEN 'deliveries' THEN 'history_days'
                               WHEN 'health_snapshots' THEN 'snapshots_days' WHEN 'detector_runs' THEN 'runs_days' END;
    v_days integer := coalesce(p_days, (monitor.setting('retention.' || v_key) #>> '{}')::integer,
                               CASE WHEN p_table IN ('alert_history', 'deliveries') THEN 90 ELSE 30 END);
BEGIN
    IF v_key IS NULL THEN
        RAISE EXCEPTION 'unknown retention table %', p_table USING ERRCODE = '22023';
    END IF;
    IF v_days NOT BETWEEN 0 AND 36500 THEN
        RAISE EXCEPTION '% must be from 0 to 36500 days, not %', v_key, v_days USING ERRCODE = '22023';
    END IF;
    RETURN now() - make_interval(days => v_days);
END
$$;

CREATE FUNCTION monitor.retry_delivery(p_delivery_id bigint) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE PROCEDURE monitor.run_all()
    LANGUAGE plpgsql
    AS $$
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

COMMENT ON PROCEDURE monitor.run_all() IS 'Run every enabled detector, each committed on its own, under the caller''s statement_timeout; the first cancelled run ends the call and the rest are recorded as skipped.';

CREATE FUNCTION monitor.run_detector(p_name text, p_since timestamp with time zone DEFAULT NULL::timestamp with time zone, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    SET jit TO 'off'
    AS $_$
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
$_$;

COMMENT ON FUNCTION monitor.run_detector(p_name text, p_since timestamp with time zone, p_until timestamp with time zone) IS 'Run one detector now in the caller''s transaction; returns the number of events opened. Errors and timeouts are recorded in monitor.detector_runs; a concurrent run of the same detector is skipped.';

CREATE FUNCTION monitor.run_since(p_detector monitor.detectors, p_override timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT coalesce(
        p_override,
        (SELECT w.high_water - coalesce(monitor.param_interval(p_detector.params, 'late_window'), interval '0')
           FROM monitor.watermarks w WHERE w.detector = p_detector.name),
        now() - coalesce(monitor.param_interval(p_detector.params, 'first_lookback'), interval '24 hours'))
$$;

CREATE FUNCTION monitor.schedule_seconds(p_schedule text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
    SELECT CASE WHEN p_schedule ~ '^[ \t]*([1-9]|[1-5][0-9])[ \t]+seconds?[ \t]*$'
                THEN substring(p_schedule from '[0-9]+')::integer END
$_$;

CREATE FUNCTION monitor.schema_problem(p_schema text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT CASE
        WHEN n.oid IS NULL THEN format('schema %s does not exist (whoever creates it would own it)', p_schema)
        WHEN NOT monitor.trusted_role(n.nspowner) THEN format('schema %s is owned by %s', n.nspname,
                                                             n.nspowner::regrole)
        ELSE (SELECT format('role %s may create objects in schema %s',
                            CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, n.nspname)
                FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
               WHERE a.privilege_type = 'CREATE' AND (a.grantee = 0 OR NOT monitor.trusted_role(a.grantee))
               LIMIT 1)
    END
    FROM (SELECT p_schema AS name) s LEFT JOIN pg_namespace n ON n.nspname = s.name
$$;

CREATE FUNCTION monitor.seen_age() RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$ SELECT 2147483647 $$;

COMMENT ON FUNCTION monitor.seen_age() IS 'Deprecated: use monitor.seen_age(params). The largest age: every row from since is examined.';

CREATE FUNCTION monitor.seen_age(p_params jsonb) RETURNS integer
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT coalesce(age(((nullif(p_params ->> 'seen', '')::xid8::text::bigint % 4294967296)::text)::xid),
                    2147483647)
$$;

COMMENT ON FUNCTION monitor.seen_age(p_params jsonb) IS 'The age of the newest transaction whose rows the previous run saw (params ->> ''seen''); the largest age without it.';

CREATE FUNCTION monitor.set_params(p_detector text, p_params jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

COMMENT ON FUNCTION monitor.set_params(p_detector text, p_params jsonb) IS 'Merge, validate and store parameters of one detector; takes effect at its next run.';

CREATE FUNCTION monitor.setting(p_key text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT value FROM monitor.settings WHERE key = p_key
$$;

CREATE FUNCTION monitor.severity_rank(p_severity text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT CASE p_severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 END
$$;

CREATE FUNCTION monitor.snapshot() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
DECLARE
    id bigint;
BEGIN
    INSERT INTO monitor.health_snapshots (txn_last_hour, successes, failures, success_rate,
                                          open_critical, open_high, open_medium, open_low, detector_lag)
    SELECT t.total, t.ok, t.failed,
           round(t.ok::numeric / nullif(t.ok + t.failed, 0), 4),
           e.critical, e.high, e.medium, e.low,
           (SELECT max(now() - coalesce(r.last_ok, d.enabled_at))
              FROM monitor.detectors d
              LEFT JOIN LATERAL (SELECT max(finished_at) AS last_ok FROM monitor.detector_runs r
                                  WHERE r.detector = d.name AND r.status = 'ok') r ON true
             WHERE d.enabled)
    FROM (SELECT count(*) AS total,
                 count(*) FILTER (WHERE status = 'success') AS ok,
                 count(*) FILTER (WHERE status = 'failed') AS failed
            FROM monitor.src_transactions WHERE created_at >= now() - interval '1 hour' AND is_primary) t,
         (SELECT count(*) FILTER (WHERE severity = 'critical') AS critical,
                 count(*) FILTER (WHERE severity = 'high') AS high,
                 count(*) FILTER (WHERE severity = 'medium') AS medium,
                 count(*) FILTER (WHERE severity = 'low') AS low
            FROM monitor.events WHERE status <> 'resolved') e
    RETURNING snapshot_id INTO id;
    RETURN id;
END
$$;

COMMENT ON FUNCTION monitor.snapshot() IS 'Record one row in monitor.health_snapshots (pg_cron: every 5 minutes).';

CREATE FUNCTION monitor.sources_problem() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    WITH RECURSIVE behind (classid, objid) AS (
        SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c
         WHERE c.relnamespace = 'monitor'::regnamespace
           AND c.relname IN ('src_accounts', 'src_transactions', 'src_scans')
        UNION
        SELECT d.refclassid, d.refobjid
          FROM behind b
          JOIN pg_rewrite rw ON b.classid = 'pg_class'::regclass AND rw.ev_class = b.objid
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
         WHERE d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_operator'::regclass)
           AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = b.objid)
    )
    SELECT format('%s %s is owned by %s, and detectors read it with monitor''s rights: it must be owned by %s '
                  '(the owner of schema monitor) or a superuser', what, name, owner,
                  (SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'monitor'))
      FROM (
        SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                              ELSE 'table with row-level security' END AS what,
               c.oid::regclass::text AS name, c.relowner::regrole::text AS owner, c.relowner AS owner_oid
          FROM behind b JOIN pg_class c ON b.classid = 'pg_class'::regclass AND c.oid = b.objid
         WHERE c.relkind IN ('v', 'm', 'f') OR (c.relkind IN ('r', 'p') AND c.relrowsecurity)
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.proowner::regrole::text, p.proowner
          FROM behind b JOIN pg_proc p ON b.classid = 'pg_proc'::regclass AND p.oid = b.objid
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.proowner::regrole::text, p.proowner
          FROM behind b JOIN pg_operator o ON b.classid = 'pg_operator'::regclass AND o.oid = b.objid
          JOIN pg_proc p ON p.oid = o.oprcode
      ) x
     WHERE x.owner_oid <> 10  -- the bootstrap superuser, owner of PostgreSQL's own objects
       AND NOT monitor.trusted_role(x.owner_oid)
     LIMIT 1
$$;

CREATE FUNCTION monitor.transactions_have_updated_at() RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    SELECT true
$$;

CREATE FUNCTION monitor.trusted_role(p_role oid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
    WITH r AS (
        SELECT CASE WHEN p_role = 'pg_database_owner'::regrole
                    THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database())
                    ELSE p_role END AS oid
    )
    SELECT coalesce((SELECT a.rolsuper FROM pg_roles a WHERE a.oid = r.oid), false)
        OR r.oid = (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'monitor')
      FROM r
$$;

CREATE FUNCTION monitor.unregister_detector(p_name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $$
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

CREATE FUNCTION monitor.valid_schedule(p_schedule text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
    -- five cron fields, a macro, or 1-59 seconds (pg_cron 1.5+); spaces and tabs only, never a newline
    SELECT p_schedule ~ '^[ \t]*[0-9*,/-]+([ \t]+[0-9A-Za-z*,/-]+){4}[ \t]*$'
        OR p_schedule ~ '^[ \t]*@(yearly|annually|monthly|weekly|daily|hourly|reboot)[ \t]*$'
        OR monitor.schedule_seconds(p_schedule) IS NOT NULL
$_$;

CREATE FUNCTION monitor.validate_params(p_detector text, p_defaults jsonb, p_params jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
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
$_$;

COMMENT ON FUNCTION monitor.validate_params(p_detector text, p_defaults jsonb, p_params jsonb) IS 'Refuses unknown parameter keys, values of the wrong kind and values out of range; returns the parameters.';

CREATE FUNCTION monitor.volume_anomaly_at(params jsonb, p_hour timestamp without time zone) RETURNS SETOF monitor.finding
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'monitor', 'pg_temp'
    AS $_$
DECLARE
    v_observed bigint;  -- the hour's count
BEGIN
    -- a one-shot plan: the planner sees the actual hour (an index range scan)
    EXECUTE $q$
    SELECT count(*) FROM monitor.src_transactions t
     WHERE t.created_at >= $1 AND t.created_at < $2 AND t.is_primary $q$
    INTO v_observed USING p_hour AT TIME ZONE 'UTC', (p_hour + interval '1 hour') AT TIME ZONE 'UTC';
    RETURN QUERY
    WITH first_hour AS (
        SELECT min(v.hour_utc) AS h FROM monitor.volume_hourly v
    ), samples AS (
        SELECT p_hour - make_interval(days => 7 * k) AS hour_utc,
               coalesce((SELECT v.txns FROM monitor.volume_hourly v
                          WHERE v.hour_utc = p_hour - make_interval(days => 7 * k)), 0) AS txns
          FROM generate_series(1, (params ->> 'baseline_days')::integer / 7) k, first_hour f
         WHERE p_hour - make_interval(days => 7 * k) >= f.h
    ), stats AS (
        SELECT count(*) AS n, avg(s.txns) AS mean, coalesce(stddev_samp(s.txns), 0) AS sd,
               jsonb_agg(jsonb_build_object('hour', s.hour_utc, 'txns', s.txns) ORDER BY s.hour_utc) AS rows
          FROM samples s
    ), judged AS (
        SELECT v_observed AS observed, s.*,
               -- sqrt(1 + 1/n): a new hour deviates from a mean of n samples by more than one hour
               -- deviates from the true mean (a prediction interval), see CHANGELOG.md
               (params ->> 'sigma')::numeric * greatest(s.sd, sqrt(s.mean), 1)
                   * sqrt(1 + 1.0 / greatest(s.n, 1)) AS allowed
          FROM stats s
    )
    SELECT 'system', 'system', NULL::text, NULL::numeric,
           format('%s transactions in the hour from %s UTC, expected about %s (allowed deviation %s)',
                  j.observed, p_hour, round(j.mean, 1), round(j.allowed, 1)),
           jsonb_build_object('hour_utc', p_hour, 'observed', j.observed, 'baseline_mean', round(j.mean, 2),
                              'baseline_stddev', round(j.sd, 2), 'allowed_deviation', round(j.allowed, 2),
                              'samples', j.rows, 'sigma', params -> 'sigma',
                              'baseline_days', params -> 'baseline_days', 'min_samples', params -> 'min_samples')
      FROM judged j
     WHERE j.n >= (params ->> 'min_samples')::integer
       AND abs(j.observed - j.mean) > j.allowed;
END
$_$;

CREATE TABLE ledger.accounts (
    account_id text NOT NULL,
    balance numeric DEFAULT 0 NOT NULL,
    opening_balance numeric DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE ledger.scans (
    scan_id text NOT NULL,
    account_id text NOT NULL,
    device_id text,
    scanned_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE ledger.transactions (
    txn_id text NOT NULL,
    account_id text NOT NULL,
    amount numeric NOT NULL,
    status text NOT NULL,
    balance_before numeric,
    balance_after numeric,
    device_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT transactions_status_check CHECK ((status = ANY (ARRAY['success'::text, 'failed'::text, 'pending'::text])))
);

CREATE UNLOGGED TABLE monitor.account_totals (
    account_id text NOT NULL,
    success_sum numeric DEFAULT 0 NOT NULL
)
WITH (fillfactor='70');

CREATE TABLE monitor.alert_history (
    history_id bigint NOT NULL,
    event_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    transition text NOT NULL,
    actor text NOT NULL,
    note text,
    detector text NOT NULL,
    severity text NOT NULL,
    subject text NOT NULL,
    summary text NOT NULL,
    db_user text DEFAULT SESSION_USER,
    CONSTRAINT alert_history_transition_check CHECK ((transition = ANY (ARRAY['opened'::text, 'acknowledged'::text, 'resolved'::text, 'auto_resolved'::text, 'severity_changed'::text, 'notified'::text, 'notification_failed'::text, 'suppressed'::text])))
);

COMMENT ON COLUMN monitor.alert_history.db_user IS 'the database user who made the transition (NULL for rows older than the column); actor is who they named';

ALTER TABLE monitor.alert_history ALTER COLUMN history_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.alert_history_history_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitor.counters (
    name text NOT NULL,
    value bigint NOT NULL
);

COMMENT ON TABLE monitor.counters IS 'Monotonic counters (events_resolved: by a person or by the runner)';

ALTER TABLE monitor.deliveries ALTER COLUMN delivery_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.deliveries_delivery_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitor.delivery_attempts (
    attempt_id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    receiver text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    latency_ms numeric NOT NULL,
    ok boolean NOT NULL,
    status_code integer,
    reply text,
    worker text NOT NULL
);

ALTER TABLE monitor.delivery_attempts ALTER COLUMN attempt_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.delivery_attempts_attempt_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitor.detector_runs (
    run_id bigint NOT NULL,
    detector text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    status text NOT NULL,
    since timestamp with time zone,
    events_opened integer DEFAULT 0 NOT NULL,
    events_updated integer DEFAULT 0 NOT NULL,
    events_resolved integer DEFAULT 0 NOT NULL,
    rows_examined bigint,
    error text,
    CONSTRAINT detector_runs_status_check CHECK ((status = ANY (ARRAY['ok'::text, 'error'::text, 'skipped'::text])))
);

ALTER TABLE monitor.detector_runs ALTER COLUMN run_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.detector_runs_run_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE monitor.events ALTER COLUMN event_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.events_event_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE UNLOGGED TABLE monitor.failure_minutes (
    minute timestamp with time zone NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL
);

COMMENT ON TABLE monitor.failure_minutes IS 'failure_rate''s cache: success and failed transactions created in each minute of its window';

CREATE TABLE monitor.health_snapshots (
    snapshot_id bigint NOT NULL,
    taken_at timestamp with time zone DEFAULT now() NOT NULL,
    txn_last_hour bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    success_rate numeric,
    open_critical integer NOT NULL,
    open_high integer NOT NULL,
    open_medium integer NOT NULL,
    open_low integer NOT NULL,
    detector_lag interval
);

ALTER TABLE monitor.health_snapshots ALTER COLUMN snapshot_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.health_snapshots_snapshot_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitor.receivers (
    name text NOT NULL,
    type text NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    secret_env text,
    secret text,
    failures integer DEFAULT 0 NOT NULL,
    open_until timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT receivers_config_check CHECK ((jsonb_typeof(config) = 'object'::text)),
    CONSTRAINT receivers_name_check CHECK ((name ~ '^[a-z][a-z0-9_-]{0,62}$'::text)),
    CONSTRAINT receivers_secret_env_check CHECK ((secret_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'::text)),
    CONSTRAINT receivers_type_check CHECK ((type = ANY (ARRAY['webhook'::text, 'slack'::text, 'email'::text, 'pagerduty'::text])))
);

COMMENT ON TABLE monitor.receivers IS 'Where notifications go: a webhook, Slack, an SMTP server or PagerDuty';

COMMENT ON COLUMN monitor.receivers.secret IS 'a secret given literally (secret_env, the name of an environment variable of the worker, is preferred); no role but the owner reads it';

ALTER TABLE monitor.routes ALTER COLUMN route_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.routes_route_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE monitor.run_locks (
    detector text NOT NULL
);

COMMENT ON TABLE monitor.run_locks IS 'One row per detector, locked by its running run (FOR UPDATE SKIP LOCKED): a concurrent run is skipped';

CREATE TABLE monitor.settings (
    key text NOT NULL,
    value jsonb NOT NULL,
    description text DEFAULT ''::text NOT NULL
);

CREATE TABLE monitor.silences (
    silence_id bigint NOT NULL,
    detector text,
    subject_glob text,
    starts_at timestamp with time zone DEFAULT now() NOT NULL,
    ends_at timestamp with time zone NOT NULL,
    comment text NOT NULL,
    created_by text DEFAULT SESSION_USER NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT silences_check CHECK ((ends_at > starts_at))
);

COMMENT ON TABLE monitor.silences IS 'While a silence is active, the transitions of the events it matches are recorded as suppressed, not sent';

ALTER TABLE monitor.silences ALTER COLUMN silence_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME monitor.silences_silence_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW monitor.src_accounts AS
 SELECT s.account_id,
    s.balance,
    COALESCE(s.opening_balance, (0)::numeric) AS opening_balance,
    s.updated_at,
    s.xmin AS row_xmin,
    COALESCE(NULL::boolean, false) AS allow_negative
   FROM ledger.accounts s
  WHERE true;

COMMENT ON VIEW monitor.src_accounts IS 'monitorctl source: accounts, from ledger.accounts';

CREATE VIEW monitor.src_scans AS
 SELECT s.scan_id,
    s.account_id,
    s.device_id,
    s.scanned_at,
    s.xmin AS row_xmin
   FROM ledger.scans s
  WHERE true;

COMMENT ON VIEW monitor.src_scans IS 'monitorctl source: scans, from ledger.scans';

CREATE VIEW monitor.src_transactions AS
 SELECT s.txn_id,
    s.account_id,
    s.amount,
    s.status,
    s.balance_before,
    s.balance_after,
    s.device_id,
    s.created_at,
    s.updated_at,
    s.xmin AS row_xmin,
    NULL::text AS leg,
    (s.amount < (0)::numeric) AS is_debit,
    true AS is_primary,
    NULL::boolean AS posted,
    NULL::numeric AS sequence
   FROM ledger.transactions s
  WHERE true;

COMMENT ON VIEW monitor.src_transactions IS 'monitorctl source: transactions, from ledger.transactions';

CREATE MATERIALIZED VIEW monitor.volume_hourly AS
 SELECT date_trunc('hour'::text, (t.created_at AT TIME ZONE 'UTC'::text)) AS hour_utc,
    count(*) AS txns
   FROM monitor.src_transactions t
  WHERE ((t.created_at >= ((date_trunc('hour'::text, (now() AT TIME ZONE 'UTC'::text)) AT TIME ZONE 'UTC'::text) - '57 days'::interval)) AND t.is_primary)
  GROUP BY (date_trunc('hour'::text, (t.created_at AT TIME ZONE 'UTC'::text)))
  WITH NO DATA;

COMMENT ON MATERIALIZED VIEW monitor.volume_hourly IS 'Transactions per UTC hour over the last 57 days: the baseline of volume_anomaly.';

CREATE TABLE monitor.watermarks (
    detector text NOT NULL,
    high_water timestamp with time zone NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    seen_xmin xid8
);

COMMENT ON COLUMN monitor.watermarks.seen_xmin IS 'pg_snapshot_xmin of the last successful run''s snapshot; NULL: the next run reads its whole late window';

ALTER TABLE ONLY ledger.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (account_id);

ALTER TABLE ONLY ledger.scans
    ADD CONSTRAINT scans_pkey PRIMARY KEY (scan_id);

ALTER TABLE ONLY ledger.transactions
    ADD CONSTRAINT transactions_pkey PRIMARY KEY (txn_id);

ALTER TABLE ONLY monitor.account_totals
    ADD CONSTRAINT account_totals_pkey PRIMARY KEY (account_id);

ALTER TABLE ONLY monitor.alert_history
    ADD CONSTRAINT alert_history_pkey PRIMARY KEY (history_id);

ALTER TABLE ONLY monitor.counters
    ADD CONSTRAINT counters_pkey PRIMARY KEY (name);

ALTER TABLE ONLY monitor.deliveries
    ADD CONSTRAINT deliveries_idempotency_key_key UNIQUE (idempotency_key);

ALTER TABLE ONLY monitor.deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (delivery_id);

ALTER TABLE ONLY monitor.delivery_attempts
    ADD CONSTRAINT delivery_attempts_pkey PRIMARY KEY (attempt_id);

ALTER TABLE ONLY monitor.detector_runs
    ADD CONSTRAINT detector_runs_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY monitor.detectors
    ADD CONSTRAINT detectors_pkey PRIMARY KEY (name);

ALTER TABLE ONLY monitor.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY monitor.failure_minutes
    ADD CONSTRAINT failure_minutes_pkey PRIMARY KEY (minute);

ALTER TABLE ONLY monitor.health_snapshots
    ADD CONSTRAINT health_snapshots_pkey PRIMARY KEY (snapshot_id);

ALTER TABLE ONLY monitor.receivers
    ADD CONSTRAINT receivers_pkey PRIMARY KEY (name);

ALTER TABLE ONLY monitor.routes
    ADD CONSTRAINT routes_pkey PRIMARY KEY (route_id);

ALTER TABLE ONLY monitor.run_locks
    ADD CONSTRAINT run_locks_pkey PRIMARY KEY (detector);

ALTER TABLE ONLY monitor.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (key);

ALTER TABLE ONLY monitor.silences
    ADD CONSTRAINT silences_pkey PRIMARY KEY (silence_id);

ALTER TABLE ONLY monitor.watermarks
    ADD CONSTRAINT watermarks_pkey PRIMARY KEY (detector);

CREATE INDEX accounts_negative ON ledger.accounts USING btree (account_id) WHERE (balance < (0)::numeric);

CREATE INDEX accounts_updated ON ledger.accounts USING btree (updated_at);

CREATE INDEX scans_account_scanned ON ledger.scans USING btree (account_id, scanned_at);

CREATE INDEX scans_scanned ON ledger.scans USING btree (scanned_at);

CREATE INDEX transactions_account_created ON ledger.transactions USING btree (account_id, created_at);

CREATE INDEX transactions_created ON ledger.transactions USING btree (created_at);

CREATE INDEX transactions_failed_created ON ledger.transactions USING btree (created_at) WHERE (status = 'failed'::text);

CREATE INDEX transactions_failed_updated ON ledger.transactions USING btree (updated_at) WHERE (status = 'failed'::text);

CREATE INDEX transactions_pending ON ledger.transactions USING btree (created_at) WHERE (status = 'pending'::text);

CREATE INDEX transactions_updated ON ledger.transactions USING btree (updated_at);

CREATE INDEX account_totals_lookup ON monitor.account_totals USING hash (account_id);

CREATE INDEX alert_history_created_at ON monitor.alert_history USING btree (created_at);

CREATE INDEX alert_history_event ON monitor.alert_history USING btree (event_id, history_id);

CREATE INDEX deliveries_backlog ON monitor.deliveries USING btree (receiver, status) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text, 'dead'::text]));

CREATE INDEX deliveries_created_at ON monitor.deliveries USING btree (created_at);

CREATE INDEX deliveries_digest ON monitor.deliveries USING btree (digest_id) WHERE (digest_id IS NOT NULL);

CREATE INDEX deliveries_due ON monitor.deliveries USING btree (due_at) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text]));

CREATE UNIQUE INDEX deliveries_escalated_once ON monitor.deliveries USING btree (event_id, route_id) WHERE (transition = 'escalated'::text);

CREATE INDEX deliveries_event ON monitor.deliveries USING btree (event_id, receiver);

CREATE INDEX deliveries_route ON monitor.deliveries USING btree (route_id) WHERE (route_id IS NOT NULL);

CREATE INDEX deliveries_sent ON monitor.deliveries USING btree (receiver, sent_at) WHERE (status = 'sent'::text);

CREATE INDEX delivery_attempts_delivery ON monitor.delivery_attempts USING btree (delivery_id);

CREATE INDEX delivery_attempts_started_at ON monitor.delivery_attempts USING btree (started_at);

CREATE INDEX detector_runs_detector ON monitor.detector_runs USING btree (detector, started_at DESC);

CREATE INDEX detector_runs_started_at ON monitor.detector_runs USING btree (started_at);

CREATE UNIQUE INDEX events_active_dedup ON monitor.events USING btree (detector, dedup_key) WHERE (status <> 'resolved'::text);

CREATE INDEX events_active_severity ON monitor.events USING btree (severity) WHERE (status <> 'resolved'::text);

CREATE INDEX events_changed_at ON monitor.events USING btree (changed_at);

CREATE INDEX events_detector_key ON monitor.events USING btree (detector, dedup_key);

CREATE INDEX events_resolved_at ON monitor.events USING btree (resolved_at) WHERE (status = 'resolved'::text);

CREATE INDEX health_snapshots_taken_at ON monitor.health_snapshots USING btree (taken_at);

CREATE UNIQUE INDEX volume_hourly_hour ON monitor.volume_hourly USING btree (hour_utc);

CREATE TRIGGER accounts_touch BEFORE UPDATE ON ledger.accounts FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION ledger.touch_updated_at();

CREATE TRIGGER transactions_touch BEFORE UPDATE ON ledger.transactions FOR EACH ROW WHEN ((old.* IS DISTINCT FROM new.*)) EXECUTE FUNCTION ledger.touch_updated_at();

CREATE TRIGGER alert_history_enqueue AFTER INSERT ON monitor.alert_history REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION monitor.enqueue_deliveries();

CREATE TRIGGER detectors_touch BEFORE UPDATE ON monitor.detectors FOR EACH ROW EXECUTE FUNCTION monitor.detectors_touch();

ALTER TABLE ONLY ledger.scans
    ADD CONSTRAINT scans_account_id_fkey FOREIGN KEY (account_id) REFERENCES ledger.accounts(account_id);

ALTER TABLE ONLY ledger.transactions
    ADD CONSTRAINT transactions_account_id_fkey FOREIGN KEY (account_id) REFERENCES ledger.accounts(account_id);

ALTER TABLE ONLY monitor.deliveries
    ADD CONSTRAINT deliveries_digest_id_fkey FOREIGN KEY (digest_id) REFERENCES monitor.deliveries(delivery_id) ON DELETE SET NULL;

ALTER TABLE ONLY monitor.deliveries
    ADD CONSTRAINT deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES monitor.events(event_id) ON DELETE SET NULL;

ALTER TABLE ONLY monitor.deliveries
    ADD CONSTRAINT deliveries_route_id_fkey FOREIGN KEY (route_id) REFERENCES monitor.routes(route_id) ON DELETE SET NULL;

ALTER TABLE ONLY monitor.delivery_attempts
    ADD CONSTRAINT delivery_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES monitor.deliveries(delivery_id) ON DELETE CASCADE;

ALTER TABLE ONLY monitor.routes
    ADD CONSTRAINT routes_escalate_to_fkey FOREIGN KEY (escalate_to) REFERENCES monitor.receivers(name);

ALTER TABLE ONLY monitor.routes
    ADD CONSTRAINT routes_receiver_fkey FOREIGN KEY (receiver) REFERENCES monitor.receivers(name);
