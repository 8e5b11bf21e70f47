-- Privileges of the NOLOGIN roles (docs/security.md). monitor_reader reads events, status and history;
-- monitor_operator may also acknowledge, resolve and run detectors, only through these functions.

-- Exactly these grants: whatever an earlier version granted is taken back first. Every function
-- either role can call is listed in docs/security.md, and tests/integration/test_security.py tries
-- the pg_temp and public-schema attacks through each of them.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA monitor FROM PUBLIC, monitor_reader, monitor_operator;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA monitor FROM PUBLIC, monitor_reader, monitor_operator;
GRANT USAGE ON SCHEMA monitor TO monitor_reader;
GRANT SELECT ON monitor.events, monitor.alert_history, monitor.detectors, monitor.detector_runs,
                monitor.health_snapshots, monitor.settings, monitor.watermarks TO monitor_reader;
GRANT EXECUTE ON FUNCTION monitor.acknowledge(bigint[], text), monitor.resolve(bigint[], text, text),
                          monitor.run_detector(text, timestamptz, timestamptz) TO monitor_operator;

-- monitorctl checks the migration state before every command: readers may see which ran.
GRANT SELECT ON monitor._yoyo_migration TO monitor_reader;

-- `monitorctl status` judges failing and overdue detectors exactly as detector_health does, and
-- finds pg_cron's database; `monitorctl run` reads each detector's timeout as a statement_timeout.
GRANT EXECUTE ON FUNCTION monitor.detector_problems(), monitor.cron_database() TO monitor_reader;
GRANT EXECUTE ON FUNCTION monitor.interval_ms(text) TO monitor_operator;

-- Notifications (docs/notifications.md): what was sent, to whom, and how it went; never a secret.
GRANT SELECT ON monitor.routes, monitor.silences, monitor.deliveries, monitor.delivery_attempts TO monitor_reader;
REVOKE ALL ON monitor.receivers FROM monitor_reader, monitor_operator;
GRANT SELECT (name, type, config, secret_env, failures, open_until, created_at) ON monitor.receivers TO monitor_reader;
GRANT EXECUTE ON FUNCTION monitor.receiver_has_secret(text) TO monitor_reader;
-- on-call people silence what they are working on (docs/notifications.md)
GRANT EXECUTE ON FUNCTION monitor.add_silence(text, text, timestamptz, timestamptz, text),
                          monitor.expire_silence(bigint) TO monitor_operator;
-- the server's counter of events opened (docs/metrics.md): the events' id sequence
GRANT SELECT ON SEQUENCE monitor.events_event_id_seq TO monitor_reader;
GRANT SELECT ON monitor.counters TO monitor_reader;
