-- Failed transactions are a few percent of a ledger, and failed_debit and consecutive_failures read
-- only them: partial indexes let both read the failed rows of their window without visiting every
-- row of it (under a heavy stream, the late window holds minutes of rows). Cheap to keep: only
-- failed rows have entries.
-- depends: 0001.ledger-schema

CREATE INDEX IF NOT EXISTS transactions_failed_created ON ledger.transactions (created_at) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS transactions_failed_updated ON ledger.transactions (updated_at) WHERE status = 'failed';
