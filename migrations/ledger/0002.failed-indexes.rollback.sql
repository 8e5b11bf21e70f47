DROP INDEX IF EXISTS ledger.transactions_failed_updated;
DROP INDEX IF EXISTS ledger.transactions_failed_created;
