-- The ledger's trigger function runs in the session of whoever updates a row: it pins its
-- search_path (pg_temp last) like every function monitorctl ships (docs/security.md).
-- depends: 0002.failed-indexes

ALTER FUNCTION ledger.touch_updated_at() SET search_path = pg_catalog, ledger, pg_temp;
