DROP TABLE IF EXISTS monitor.counters;
