-- The monitor schema: detector registry, events, history, runs, snapshots, settings, watermarks.
-- depends:

CREATE SCHEMA IF NOT EXISTS monitor;

CREATE TYPE monitor.finding AS (
    subject   text,
    dedup_key text,
    txn_id    text,
    amount    numeric,
    summary   text,
    evidence  jsonb
);

CREATE TABLE monitor.detectors (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    enabled     boolean NOT NULL DEFAULT true,
    severity    text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    kind        text NOT NULL CHECK (kind IN ('finding', 'condition')),
    schedule    text NOT NULL DEFAULT '* * * * *',
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    param_defaults jsonb NOT NULL DEFAULT '{}'::jsonb,
    description text NOT NULL DEFAULT '',
    function    text NOT NULL,
    prepare     text,
    builtin     boolean NOT NULL DEFAULT false,
    scheduled   boolean NOT NULL DEFAULT false,  -- has a pg_cron job (kept by install / detectors enable)
    enabled_at  timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE monitor.events (
    event_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detector        text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('finding', 'condition')),
    severity        text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    subject         text NOT NULL,
    dedup_key       text NOT NULL,
    txn_id          text,
    amount          numeric,
    summary         text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    occurrences     integer NOT NULL DEFAULT 1,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- One live event per (detector, dedup key); a resolved condition may recur as a new event.
CREATE UNIQUE INDEX events_active_dedup ON monitor.events (detector, dedup_key)
    WHERE status <> 'resolved';
CREATE INDEX events_detector_key ON monitor.events (detector, dedup_key);
CREATE INDEX events_last_seen ON monitor.events (last_seen DESC);
CREATE INDEX events_resolved_at ON monitor.events (resolved_at) WHERE status = 'resolved';
CREATE INDEX events_active_severity ON monitor.events (severity) WHERE status <> 'resolved';

CREATE TABLE monitor.alert_history (
    history_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    transition text NOT NULL CHECK (transition IN
               ('opened', 'acknowledged', 'resolved', 'auto_resolved', 'severity_changed')),
    actor      text NOT NULL,
    note       text,
    detector   text NOT NULL,
    severity   text NOT NULL,
    subject    text NOT NULL,
    summary    text NOT NULL
);
CREATE INDEX alert_history_event ON monitor.alert_history (event_id, history_id);
CREATE INDEX alert_history_created_at ON monitor.alert_history (created_at);

CREATE TABLE monitor.detector_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    detector        text NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('ok', 'error', 'skipped')),
    since           timestamptz,
    events_opened   integer NOT NULL DEFAULT 0,
    events_updated  integer NOT NULL DEFAULT 0,
    events_resolved integer NOT NULL DEFAULT 0,
    rows_examined   bigint,
    error           text
);
CREATE INDEX detector_runs_detector ON monitor.detector_runs (detector, started_at DESC);
CREATE INDEX detector_runs_started_at ON monitor.detector_runs (started_at);

CREATE TABLE monitor.health_snapshots (
    snapshot_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    txn_last_hour    bigint NOT NULL,
    successes        bigint NOT NULL,
    failures         bigint NOT NULL,
    success_rate     numeric,
    open_critical    integer NOT NULL,
    open_high        integer NOT NULL,
    open_medium      integer NOT NULL,
    open_low         integer NOT NULL,
    detector_lag     interval
);
CREATE INDEX health_snapshots_taken_at ON monitor.health_snapshots (taken_at);

CREATE TABLE monitor.settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    description text NOT NULL DEFAULT ''
);
INSERT INTO monitor.settings (key, value, description) VALUES
    ('retention.events_days', '30', 'resolved events older than this are pruned'),
    ('retention.snapshots_days', '30', 'health snapshots older than this are pruned'),
    ('retention.runs_days', '30', 'detector run records older than this are pruned'),
    ('retention.history_days', '90', 'alert history older than this is pruned'),
    ('retention.cron_runs_days', '30', 'pg_cron run records of monitor jobs older than this are pruned'),
    ('retention.batch_size', '5000', 'rows deleted per batch by monitor.prune');

CREATE TABLE monitor.watermarks (
    detector   text PRIMARY KEY,
    high_water timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per-account running totals for balance reconciliation: the sum of each account's `success`
-- amounts created before the horizon kept in monitor.watermarks, brought up to date by the runner.
-- A cache the full pass rebuilds: unlogged (no WAL for a million-row rebuild); emptied by a crash,
-- which the next run notices and answers with a full pass.
CREATE UNLOGGED TABLE monitor.account_totals (
    account_id  text PRIMARY KEY,
    success_sum numeric NOT NULL DEFAULT 0
);
