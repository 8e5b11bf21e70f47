-- Notifications (docs/notifications.md): receivers, ordered routes, silences, and the transactional
-- outbox of deliveries. A transition recorded in alert_history enqueues its deliveries in the same
-- transaction (sql/075_notifications.sql); `monitorctl notify` claims them with FOR UPDATE SKIP
-- LOCKED under a lease, sends them, and records every attempt.
-- depends: 0006.failure-minutes

CREATE TABLE monitor.receivers (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    type        text NOT NULL CHECK (type IN ('webhook', 'slack', 'email', 'pagerduty')),
    config      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    secret_env  text CHECK (secret_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    secret      text,
    -- the circuit breaker: consecutive failed attempts, and until when nothing is sent to it
    failures    integer NOT NULL DEFAULT 0,
    open_until  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE monitor.receivers IS 'Where notifications go: a webhook, Slack, an SMTP server or PagerDuty';
COMMENT ON COLUMN monitor.receivers.secret IS
    'a secret given literally (secret_env, the name of an environment variable of the worker, is preferred); no role but the owner reads it';

CREATE TABLE monitor.routes (
    route_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position        integer NOT NULL,
    receiver        text NOT NULL REFERENCES monitor.receivers (name),
    min_severity    text NOT NULL DEFAULT 'low' CHECK (min_severity IN ('critical', 'high', 'medium', 'low')),
    detectors       text[],
    subject_glob    text,
    repeat_every    interval,       -- NULL: 4 hours for critical events, never for others; 0: never
    send_resolved   boolean NOT NULL DEFAULT true,
    continue_after  boolean NOT NULL DEFAULT false,
    escalate_after  interval,
    escalate_to     text REFERENCES monitor.receivers (name),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((escalate_after IS NULL) = (escalate_to IS NULL))
);
COMMENT ON TABLE monitor.routes IS
    'Which transitions go to which receiver: in position order, the first match wins unless continue_after';

CREATE TABLE monitor.silences (
    silence_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detector     text,
    subject_glob text,
    starts_at    timestamptz NOT NULL DEFAULT now(),
    ends_at      timestamptz NOT NULL,
    comment      text NOT NULL,
    created_by   text NOT NULL DEFAULT session_user,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
COMMENT ON TABLE monitor.silences IS
    'While a silence is active, the transitions of the events it matches are recorded as suppressed, not sent';

CREATE TABLE monitor.deliveries (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    -- NULL: a digest, or an event pruned since (its deliveries follow the history's retention)
    event_id        bigint REFERENCES monitor.events (event_id) ON DELETE SET NULL,
    detector        text NOT NULL,
    transition      text NOT NULL CHECK (transition IN ('opened', 'severity_changed', 'acknowledged', 'resolved',
                                                        'auto_resolved', 'repeat', 'escalated', 'digest')),
    receiver        text NOT NULL,  -- kept after the receiver is removed, for the record
    route_id        bigint REFERENCES monitor.routes (route_id) ON DELETE SET NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'failed', 'sent', 'dead', 'suppressed', 'digested')),
    digest_id       bigint REFERENCES monitor.deliveries (delivery_id) ON DELETE SET NULL,
    digest          jsonb,          -- a digest's summary of the events it stands for
    attempts        integer NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    leased_by       text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    last_error      text
);
COMMENT ON TABLE monitor.deliveries IS
    'The outbox: one row per transition and receiver, enqueued in the transition''s transaction';
CREATE INDEX deliveries_due ON monitor.deliveries (due_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_event ON monitor.deliveries (event_id, receiver);
CREATE INDEX deliveries_created_at ON monitor.deliveries (created_at);
CREATE INDEX deliveries_digest ON monitor.deliveries (digest_id) WHERE digest_id IS NOT NULL;
-- each receiver's backlog (receivers list, status, metrics), counted without reading what was sent
CREATE INDEX deliveries_backlog ON monitor.deliveries (receiver, status) WHERE status IN ('pending', 'failed', 'dead');
CREATE INDEX deliveries_sent ON monitor.deliveries (receiver, sent_at) WHERE status = 'sent';
CREATE INDEX deliveries_route ON monitor.deliveries (route_id) WHERE route_id IS NOT NULL;
-- an escalation is sent once per event and route, whichever worker enqueues it
CREATE UNIQUE INDEX deliveries_escalated_once ON monitor.deliveries (event_id, route_id) WHERE transition = 'escalated';

CREATE TABLE monitor.delivery_attempts (
    attempt_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES monitor.deliveries (delivery_id) ON DELETE CASCADE,
    receiver     text NOT NULL,
    started_at   timestamptz NOT NULL,
    latency_ms   numeric NOT NULL,
    ok           boolean NOT NULL,
    status_code  integer,           -- the HTTP status or the SMTP reply code
    reply        text,              -- an excerpt of the reply or of the error
    worker       text NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON monitor.delivery_attempts (delivery_id);
CREATE INDEX delivery_attempts_started_at ON monitor.delivery_attempts (started_at);

-- who was told, when it failed for good, and what a silence held back are transitions too
ALTER TABLE monitor.alert_history DROP CONSTRAINT alert_history_transition_check;
ALTER TABLE monitor.alert_history ADD CONSTRAINT alert_history_transition_check CHECK (transition IN
    ('opened', 'acknowledged', 'resolved', 'auto_resolved', 'severity_changed',
     'notified', 'notification_failed', 'suppressed'));

INSERT INTO monitor.settings (key, value, description) VALUES
    ('notify.max_attempts', '10', 'attempts of a delivery before it is dead-lettered'),
    ('notify.max_age', '"24 hours"', 'age of a delivery after which it is dead-lettered'),
    ('notify.digest_threshold', '20', 'more new events than this of one detector for one receiver within notify.digest_window are sent as one digest'),
    ('notify.digest_window', '"5 minutes"', 'the window of notify.digest_threshold')
ON CONFLICT (key) DO NOTHING;
