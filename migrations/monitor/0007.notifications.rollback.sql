DELETE FROM monitor.settings WHERE key LIKE 'notify.%';
DELETE FROM monitor.alert_history WHERE transition IN ('notified', 'notification_failed', 'suppressed');
ALTER TABLE monitor.alert_history DROP CONSTRAINT alert_history_transition_check;
ALTER TABLE monitor.alert_history ADD CONSTRAINT alert_history_transition_check CHECK (transition IN
    ('opened', 'acknowledged', 'resolved', 'auto_resolved', 'severity_changed'));
DROP TABLE IF EXISTS monitor.delivery_attempts, monitor.deliveries, monitor.silences, monitor.routes,
                     monitor.receivers;
