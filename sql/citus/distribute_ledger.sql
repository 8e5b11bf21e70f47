-- The reference ledger distributed on a Citus cluster (`monitorctl install --with-ledger --distributed`,
-- docs/scaling.md): ledger.accounts, ledger.transactions and ledger.scans become distributed tables
-- co-located by account_id, so that every detector's per-account work runs on the shard that holds the
-- account. A distributed table's unique keys must include its distribution column: the primary keys
-- of transactions and scans become (account_id, txn_id) and (account_id, scan_id). Rows already there
-- move to the shards, and their copies left on the coordinator are removed. Re-running it changes
-- nothing; a table distributed some other way is refused.
--
-- The ledger's trigger (touch_updated_at) sets its own row's updated_at and nothing else: it is safe
-- to run on the workers, which Citus asks to be said with citus.enable_unsafe_triggers.
SET LOCAL citus.enable_unsafe_triggers = on;
-- install makes the source views (and monitor's functions) in the same transaction, over the
-- distributed tables: Citus allows that after distributing only when the work on the shards went
-- over one connection per worker
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

DO $$
DECLARE
    t text;
    how record;
    key text[];
    pkey name;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'transactions', 'scans'] LOOP
        SELECT p.partmethod, column_to_column_name(p.logicalrelid, p.partkey) AS column
          INTO how
          FROM pg_dist_partition p WHERE p.logicalrelid = format('ledger.%I', t)::regclass;
        IF FOUND THEN
            IF how.partmethod <> 'h' OR how.column IS DISTINCT FROM 'account_id' THEN
                RAISE EXCEPTION 'ledger.% is already a Citus table, but not distributed by account_id: '
                    'undistribute it (undistribute_table) and install again', t;
            END IF;
            CONTINUE;
        END IF;
        SELECT c.conname, array_agg(a.attname::text ORDER BY a.attnum) INTO pkey, key
          FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.conrelid = format('ledger.%I', t)::regclass AND c.contype = 'p'
         GROUP BY c.conname;
        IF NOT 'account_id' = ANY (key) THEN
            EXECUTE format('ALTER TABLE ledger.%I DROP CONSTRAINT %I, ADD PRIMARY KEY (account_id, %s)',
                           t, pkey, (SELECT string_agg(format('%I', k), ', ') FROM unnest(key) AS k));
        END IF;
        IF t = 'accounts' THEN
            PERFORM create_distributed_table('ledger.accounts', 'account_id');
        ELSE
            PERFORM create_distributed_table(format('ledger.%I', t), 'account_id', colocate_with => 'ledger.accounts');
        END IF;
    END LOOP;
    -- the primary key led by txn_id served lookups by id (stuck_pending follows its open events so):
    -- an index of its own now, on every shard
    CREATE INDEX IF NOT EXISTS transactions_txn_id ON ledger.transactions (txn_id);
    -- the rows copied to the shards, left behind on the coordinator (referencing tables first)
    FOREACH t IN ARRAY ARRAY['scans', 'transactions', 'accounts'] LOOP
        PERFORM truncate_local_data_after_distributing_table(format('ledger.%I', t)::regclass);
    END LOOP;
END
$$;
