-- Counters that only go up, kept in the transactions that move them (docs/metrics.md): the server
-- exports them as Prometheus counters. events_resolved starts from the resolved events still kept.
-- depends: 0007.notifications

CREATE TABLE monitor.counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
COMMENT ON TABLE monitor.counters IS 'Monotonic counters (events_resolved: by a person or by the runner)';
INSERT INTO monitor.counters (name, value)
SELECT 'events_resolved', count(*) FROM monitor.events WHERE status = 'resolved';
