-- The reference ledger: cards/accounts, transactions and scans with exactly the logical columns
-- the detectors read. Applied only by `monitorctl install --with-ledger`. Kept by uninstall.
-- depends:

CREATE SCHEMA IF NOT EXISTS ledger;

CREATE TABLE IF NOT EXISTS ledger.accounts (
    account_id      text PRIMARY KEY,
    balance         numeric NOT NULL DEFAULT 0,
    opening_balance numeric NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ledger.transactions (
    txn_id         text PRIMARY KEY,
    account_id     text NOT NULL REFERENCES ledger.accounts (account_id),
    amount         numeric NOT NULL,
    status         text NOT NULL CHECK (status IN ('success', 'failed', 'pending')),
    balance_before numeric,
    balance_after  numeric,
    device_id      text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transactions_account_created ON ledger.transactions (account_id, created_at);
CREATE INDEX IF NOT EXISTS transactions_created ON ledger.transactions (created_at);
CREATE INDEX IF NOT EXISTS transactions_updated ON ledger.transactions (updated_at);
CREATE INDEX IF NOT EXISTS transactions_pending ON ledger.transactions (created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS ledger.scans (
    scan_id    text PRIMARY KEY,
    account_id text NOT NULL REFERENCES ledger.accounts (account_id),
    device_id  text,
    scanned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS scans_account_scanned ON ledger.scans (account_id, scanned_at);
CREATE INDEX IF NOT EXISTS scans_scanned ON ledger.scans (scanned_at);

CREATE INDEX IF NOT EXISTS accounts_updated ON ledger.accounts (updated_at);
CREATE INDEX IF NOT EXISTS accounts_negative ON ledger.accounts (account_id) WHERE balance < 0;

CREATE OR REPLACE FUNCTION ledger.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS accounts_touch ON ledger.accounts;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON ledger.accounts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION ledger.touch_updated_at();
DROP TRIGGER IF EXISTS transactions_touch ON ledger.transactions;
CREATE TRIGGER transactions_touch BEFORE UPDATE ON ledger.transactions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION ledger.touch_updated_at();
