DELETE FROM monitor.settings WHERE key IN ('scheduling.enabled', 'install.schema', 'cron.database');
DROP TABLE IF EXISTS monitor.run_locks;
ALTER TABLE monitor.detectors DROP COLUMN IF EXISTS function_digest;
