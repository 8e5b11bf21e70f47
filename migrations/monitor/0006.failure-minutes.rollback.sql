DROP TABLE IF EXISTS monitor.failure_minutes;
