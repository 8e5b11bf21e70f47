-- Shape "payments" (schema pay): a payments table with a separate balances table. A payment is a
-- debit or a credit of one wallet, with status words of its own: 'processing' (pending),
-- 'succeeded', 'declined' (a failure) and 'canceled' (a user cancellation: neither a success nor a
-- failure). No before/after balances, no scans. available_cents = sum of succeeded credits - sum of
-- succeeded debits.
CREATE SCHEMA IF NOT EXISTS pay;

CREATE TABLE pay.wallets (
    id         uuid PRIMARY KEY,
    owner      text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE pay.balances (
    wallet_id       uuid PRIMARY KEY REFERENCES pay.wallets,
    available_cents bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE pay.payments (
    id           uuid PRIMARY KEY,
    wallet_id    uuid NOT NULL REFERENCES pay.wallets,
    direction    text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount_cents bigint NOT NULL CHECK (amount_cents > 0),
    status       text NOT NULL CHECK (status IN ('processing', 'succeeded', 'declined', 'canceled')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE INDEX payments_wallet_created_idx ON pay.payments (wallet_id, created_at);
CREATE INDEX payments_created_idx ON pay.payments (created_at);
CREATE INDEX payments_updated_idx ON pay.payments (updated_at);
