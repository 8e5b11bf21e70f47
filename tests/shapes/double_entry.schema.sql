-- Shape "double_entry" (schema de): a double-entry transfer ledger whose state is kept by appending
-- child rows. A transfer moves `amount` from source to destination; its state is the latest row of
-- de.transfer_states (by id): QUEUED, then APPLIED or REJECTED. Times are UTC wall-clock, stored
-- without time zone. Account 1 is 'world' (the system account, negative by design).
CREATE SCHEMA IF NOT EXISTS de;

CREATE TABLE de.accounts (
    id                     bigint PRIMARY KEY,
    name                   text NOT NULL,
    allow_negative_balance boolean NOT NULL DEFAULT false,
    balance                bigint NOT NULL DEFAULT 0,
    created_at             timestamp without time zone NOT NULL,
    updated_at             timestamp without time zone NOT NULL
);

CREATE TABLE de.transfers (
    id                     bigint PRIMARY KEY,
    source_account_id      bigint NOT NULL REFERENCES de.accounts,
    destination_account_id bigint NOT NULL REFERENCES de.accounts,
    amount                 bigint NOT NULL CHECK (amount > 0),
    created_at             timestamp without time zone NOT NULL
);

CREATE TABLE de.transfer_states (
    id          bigint PRIMARY KEY,
    transfer_id bigint NOT NULL REFERENCES de.transfers,
    state       text NOT NULL CHECK (state IN ('QUEUED', 'APPLIED', 'REJECTED')),
    created_at  timestamp without time zone NOT NULL
);

CREATE INDEX transfers_source_created_idx ON de.transfers (source_account_id, created_at);
CREATE INDEX transfers_destination_created_idx ON de.transfers (destination_account_id, created_at);
CREATE INDEX transfers_created_idx ON de.transfers (created_at);
CREATE INDEX transfer_states_transfer_id_idx ON de.transfer_states (transfer_id, id);
