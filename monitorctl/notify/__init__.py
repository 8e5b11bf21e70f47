"""Notifications (docs/notifications.md): what each receiver is sent (payload), how it is sent
(senders) and the delivery worker that drains the outbox (worker). Routing, silences, retries and
the circuit breaker live in the database (sql/075_notifications.sql)."""
