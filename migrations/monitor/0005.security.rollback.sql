DELETE FROM monitor.settings WHERE key IN ('scheduling.enabled', 'install.schema', 'cron.database');
DROP TABLE IF EXISTS monitor.run_locks;
ALTER TABLE monitor.events RESET (fillfactor);
ALTER TABLE monitor.events DROP COLUMN IF EXISTS changed_at;
CREATE INDEX IF NOT EXISTS events_last_seen ON monitor.events (last_seen DESC);
ALTER TABLE monitor.detectors DROP COLUMN IF EXISTS function_digest;
ALTER TABLE monitor.alert_history DROP COLUMN IF EXISTS db_user;
