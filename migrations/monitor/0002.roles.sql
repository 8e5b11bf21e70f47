-- NOLOGIN roles: monitor_reader (events, status, history) and monitor_operator (reader + ack,
-- resolve, run). Roles are cluster-wide, so they are created only when missing; grants live in sql/.
-- depends: 0001.monitor-schema

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'monitor_reader') THEN
        CREATE ROLE monitor_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'monitor_operator') THEN
        CREATE ROLE monitor_operator NOLOGIN;
    END IF;
END
$$;

GRANT monitor_reader TO monitor_operator;
