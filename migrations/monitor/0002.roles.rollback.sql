-- Roles are shared by every database of the cluster: only this database's privileges are removed.
REVOKE ALL ON ALL TABLES IN SCHEMA monitor FROM monitor_reader, monitor_operator;
REVOKE ALL ON SCHEMA monitor FROM monitor_reader, monitor_operator;
