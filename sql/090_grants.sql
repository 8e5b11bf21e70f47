-- Privileges of the NOLOGIN roles (CONTRACT §7). monitor_reader reads events, status and history;
-- monitor_operator may also acknowledge, resolve and run detectors, only through these functions.

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA monitor FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA monitor FROM PUBLIC;
GRANT USAGE ON SCHEMA monitor TO monitor_reader;
GRANT SELECT ON monitor.events, monitor.alert_history, monitor.detectors, monitor.detector_runs,
                monitor.health_snapshots, monitor.settings, monitor.watermarks TO monitor_reader;
GRANT EXECUTE ON FUNCTION monitor.acknowledge(bigint[], text), monitor.resolve(bigint[], text, text),
                          monitor.run_detector(text, timestamptz) TO monitor_operator;
