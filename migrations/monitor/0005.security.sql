-- Security: what a run trusts and what it locks (docs/security.md).
-- * detectors.function_digest: the detector function's identity, owner and definition when it was
--   registered; a run refuses a function that changed since (a replaced body, a new owner).
-- * run_locks: one row per detector, locked FOR UPDATE by its run so that two runs never both do the
--   work. Locking a row needs UPDATE on the table, which no role but its owner has; an advisory lock
--   could be taken by any user of the database and silence a detector.
-- * alert_history.db_user: the database user who made a transition (session_user), beside the actor
--   the caller named (`monitorctl ack --as NAME`), which anyone calling the function may choose.
-- * events: no index on last_seen, and free space on each page, so that a condition seen again (a new
--   last_seen, occurrences, evidence) is a HOT update, with no index entries to add: an outage re-sights
--   100,000 open conditions a minute (docs/benchmarks.md). Lists sort the events they return.
-- * settings 'scheduling.enabled': whether monitorctl manages pg_cron jobs (off after
--   `install --no-schedule`, until an install without it).
-- depends: 0004.watermark-seen

ALTER TABLE monitor.detectors ADD COLUMN function_digest text;
COMMENT ON COLUMN monitor.detectors.function_digest IS
    'monitor.function_digest() of the detector function when it was registered; a run refuses a function that differs';

ALTER TABLE monitor.alert_history ADD COLUMN db_user text;
ALTER TABLE monitor.alert_history ALTER COLUMN db_user SET DEFAULT session_user;
COMMENT ON COLUMN monitor.alert_history.db_user IS
    'the database user who made the transition (NULL for rows older than the column); actor is who they named';

DROP INDEX monitor.events_last_seen;
ALTER TABLE monitor.events SET (fillfactor = 80);
-- * events.changed_at: when the event last changed in a way people follow (opened, severity, amount,
--   a finding's summary, acknowledged, resolved), not when it was merely seen again: `monitorctl
--   events --follow` reads only the events changed since its last look.
ALTER TABLE monitor.events ADD COLUMN changed_at timestamptz;
UPDATE monitor.events SET changed_at = greatest(first_seen, acknowledged_at, resolved_at);
ALTER TABLE monitor.events ALTER COLUMN changed_at SET NOT NULL,
                           ALTER COLUMN changed_at SET DEFAULT clock_timestamp();
CREATE INDEX events_changed_at ON monitor.events (changed_at);

CREATE TABLE monitor.run_locks (
    detector text PRIMARY KEY
);
COMMENT ON TABLE monitor.run_locks IS
    'One row per detector, locked by its running run (FOR UPDATE SKIP LOCKED): a concurrent run is skipped';
INSERT INTO monitor.run_locks (detector) SELECT name FROM monitor.detectors;

INSERT INTO monitor.settings (key, value, description)
VALUES ('scheduling.enabled', 'true', 'monitorctl creates and updates pg_cron jobs (install --no-schedule turns it off)')
ON CONFLICT (key) DO NOTHING;
