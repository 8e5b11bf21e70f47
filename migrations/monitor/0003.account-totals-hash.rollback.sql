DROP INDEX IF EXISTS monitor.account_totals_lookup;
