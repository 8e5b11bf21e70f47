-- balance_mismatch looks up the stored total of every account it checks (about one per new
-- transaction): a hash index answers an equality probe without a btree descent of text keys,
-- about a third faster on a million accounts (docs/benchmarks.md). The primary key stays for
-- ON CONFLICT. Totals are rewritten every minute for the accounts whose rows crossed the horizon:
-- free space on each page keeps those updates HOT (no index entries to add).
-- depends: 0002.roles

CREATE INDEX account_totals_lookup ON monitor.account_totals USING hash (account_id);
ALTER TABLE monitor.account_totals SET (fillfactor = 70);
