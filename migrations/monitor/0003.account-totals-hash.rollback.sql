ALTER TABLE monitor.account_totals RESET (fillfactor);
DROP INDEX IF EXISTS monitor.account_totals_lookup;
