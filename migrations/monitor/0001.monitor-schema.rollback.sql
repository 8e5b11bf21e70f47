DROP TABLE IF EXISTS monitor.account_totals, monitor.watermarks, monitor.settings,
    monitor.health_snapshots, monitor.detector_runs, monitor.alert_history, monitor.events,
    monitor.detectors;
DROP TYPE IF EXISTS monitor.finding;
