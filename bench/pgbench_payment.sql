-- pgbench script for the write-overhead measurement: one card payment, as a payment application
-- writes it (debit the card, record the transaction with its balances), in one transaction.
-- Variables: naccounts (-D naccounts=N). Cards are taken in turn from a fixed permutation
-- (bench.cards), so a card pays again only after every other card has: uniformly random cards at
-- thousands of payments a second would pay twice within two seconds all the time, an event storm
-- for concurrent_txn that no real ledger produces. Ids come from the bench.ids sequence.
\set cents random(100, 2500)
SELECT 1 + (nextval('bench.cards') * 7919) % :naccounts AS aid \gset
BEGIN;
UPDATE ledger.accounts SET balance = balance - :cents / 100.0
 WHERE account_id = 'c' || lpad(CAST(:aid AS text), 9, '0');
INSERT INTO ledger.transactions (txn_id, account_id, amount, status, balance_before, balance_after, device_id)
SELECT 'p' || nextval('bench.ids'), a.account_id, -(:cents / 100.0), 'success', a.balance + :cents / 100.0,
       a.balance, 'pos' || lpad(CAST(:aid % 2000 + 1 AS text), 4, '0')
  FROM ledger.accounts a WHERE a.account_id = 'c' || lpad(CAST(:aid AS text), 9, '0');
END;
