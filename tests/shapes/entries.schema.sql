-- Shape "entries" (schema en): one signed entry per account movement, with running balances and no
-- status. Each entry chains on the previous entry of its account (by created_at, then id):
-- balance_before = previous balance_after, balance_after = balance_before + amount. Several entries
-- of one account may share a created_at (written in one database transaction): id orders them.
CREATE SCHEMA IF NOT EXISTS en;

CREATE TABLE en.accounts (
    id         text PRIMARY KEY,
    balance    numeric(20, 0) NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE en.entries (
    id             bigint PRIMARY KEY,
    account_id     text NOT NULL REFERENCES en.accounts,
    amount         bigint NOT NULL,          -- signed: negative = money out
    balance_before bigint NOT NULL,
    balance_after  bigint NOT NULL,
    created_at     timestamptz NOT NULL
);

CREATE INDEX entries_account_created_idx ON en.entries (account_id, created_at);
CREATE INDEX entries_created_idx ON en.entries (created_at);
