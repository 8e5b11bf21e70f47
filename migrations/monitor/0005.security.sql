-- Security: what a run trusts and what it locks (docs/security.md).
-- * detectors.function_digest: the detector function's identity, owner and definition when it was
--   registered; a run refuses a function that changed since (a replaced body, a new owner).
-- * run_locks: one row per detector, locked FOR UPDATE by its run so that two runs never both do the
--   work. Locking a row needs UPDATE on the table, which no role but its owner has; an advisory lock
--   could be taken by any user of the database and silence a detector.
-- * settings 'scheduling.enabled': whether monitorctl manages pg_cron jobs (off after
--   `install --no-schedule`, until an install without it).
-- depends: 0004.watermark-seen

ALTER TABLE monitor.detectors ADD COLUMN function_digest text;
COMMENT ON COLUMN monitor.detectors.function_digest IS
    'monitor.function_digest() of the detector function when it was registered; a run refuses a function that differs';

CREATE TABLE monitor.run_locks (
    detector text PRIMARY KEY
);
COMMENT ON TABLE monitor.run_locks IS
    'One row per detector, locked by its running run (FOR UPDATE SKIP LOCKED): a concurrent run is skipped';
INSERT INTO monitor.run_locks (detector) SELECT name FROM monitor.detectors;

INSERT INTO monitor.settings (key, value, description)
VALUES ('scheduling.enabled', 'true', 'monitorctl creates and updates pg_cron jobs (install --no-schedule turns it off)')
ON CONFLICT (key) DO NOTHING;
