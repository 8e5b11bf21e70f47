-- Shared machinery of the burst and run detectors (duplicate_scan, concurrent_txn). p_source: scans,
-- transactions, or debits (the transactions that pay: concurrent_txn's default).
--
-- A burst is a maximal sequence of one account's rows, ordered by time then id (COLLATE "C"),
-- in which each row is within `window` of the previous one (inclusive). The rows a run must
-- examine are those at or after `since`; a burst that reaches back before `since` is followed
-- backwards through the (account_id, time) index, so its first row may be arbitrarily old. Rows
-- at or after `since` that the detector's previous run already saw (p_seen, from monitor.seen_age)
-- are context only: a burst is reported when it holds a row not seen before.
--
-- Every query here reads the source alone, partitions and groups by account_id, and bounds it by
-- time (and by a list of accounts) without a join to anything else: on a ledger distributed by
-- account_id (docs/scaling.md) each shard finds its own accounts' bursts, and only the bursts come
-- back to the coordinator. There the rows carry no xmin, so every row from since on counts as not
-- seen: a run then examines its whole late window, as on a single node for a source mapped onto a view.

CREATE OR REPLACE FUNCTION monitor.find_bursts(p_source text, p_window interval, p_min_count integer,
                                               p_since timestamptz, p_until timestamptz DEFAULT 'infinity',
                                               p_seen integer DEFAULT 2147483647, p_exclude text[] DEFAULT '{}')
RETURNS TABLE (account_id text, ids text[], times timestamptz[], devices text[], amounts numeric[],
               statuses text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    rel text;
    id_col text;
    t_col text;
    extra text;
    b record;
    seen integer := coalesce(p_seen, 2147483647);
    first_new timestamptz;
    back_accounts text[] := '{}';
    more text[];
    lookback interval := p_window * 64;
    lo timestamptz;
BEGIN
    IF p_source = 'scans' THEN
        rel := 'monitor.src_scans'; id_col := 'scan_id'; t_col := 'scanned_at';
        extra := 'NULL::numeric AS amount, NULL::text AS status';
    ELSIF p_source IN ('transactions', 'debits') THEN
        -- with both sides watched, a transfer's two legs are rows of their own (txn_id:debit,
        -- txn_id:credit): a payer's burst and a payee's never share an id, nor a self-transfer's legs
        rel := CASE p_source WHEN 'debits' THEN '(SELECT * FROM monitor.src_transactions t WHERE t.is_debit)'
                             ELSE '(SELECT t.account_id, CASE WHEN t.leg IS NULL THEN t.txn_id ELSE t.txn_id || '':'' || t.leg END'
                                  ' AS txn_id, t.created_at, t.device_id, t.amount, t.status, t.row_xmin'
                                  ' FROM monitor.src_transactions t)' END;
        id_col := 'txn_id'; t_col := 'created_at';
        extra := 'r.amount, r.status';
    ELSE
        RAISE EXCEPTION 'unknown burst source %', p_source;
    END IF;
    -- 0. The earliest fresh row: at or after since, not seen by the previous run. Under a stream,
    --    the rows of the late window were seen and this is about the previous run's time.
    EXECUTE format('SELECT min(r.%2$I) FROM %1$s r WHERE r.%2$I >= $1 AND r.%2$I < $3'
                   ' AND (age(r.row_xmin) <= $2) IS NOT FALSE AND r.account_id <> ALL ($4)', rel, t_col)
        INTO first_new USING p_since, seen, p_until, coalesce(p_exclude, '{}');
    IF first_new IS NULL THEN
        RETURN;
    END IF;
    -- 1. One range scan from that row's time - window: it holds every row a burst reaching a fresh
    --    row can have, unless the burst started before it (then its earlier rows may lie further back).
    --    The range is read twice (NOT MATERIALIZED), once to find the accounts with a fresh row and a
    --    neighbour, once for their rows: no slower than writing it to a CTE and reading that back,
    --    and a CTE read twice would be gathered on a Citus coordinator instead of staying on the shards.
    FOR b IN EXECUTE format($q$
        WITH win AS NOT MATERIALIZED (
            SELECT r.account_id, r.%3$I AS id, r.%2$I AS t, r.device_id, %4$s,
                   r.%2$I >= $1 AND r.%2$I < $6 AND (age(r.row_xmin) <= $4) IS NOT FALSE AS fresh  -- not seen before
              FROM %1$s r WHERE r.%2$I >= $5 - $2 AND r.%2$I < $6 + $2  -- a backfill's slice ends at $6
               AND r.account_id <> ALL ($7)  -- excluded subjects: not followed at all (a system account)
        ), fresh AS (              -- an account alone in the range has no neighbour within the window
            SELECT w.account_id FROM win w GROUP BY w.account_id HAVING bool_or(w.fresh) AND count(*) >= 2
        ), gaps AS (               -- one sort: each row's distance to its neighbours
            SELECT w.*, w.t - lag(w.t) OVER o AS gap_before, lead(w.t) OVER o - w.t AS gap_after
              FROM win w JOIN fresh f ON f.account_id = w.account_id
            WINDOW o AS (PARTITION BY w.account_id ORDER BY w.t, w.id COLLATE "C")
        ), marked AS (             -- only rows with a neighbour within the window can be in a burst
            SELECT g.*, CASE WHEN g.gap_before IS NULL OR g.gap_before > $2 THEN 1 ELSE 0 END AS starts
              FROM gaps g
             WHERE g.gap_before <= $2 OR g.gap_after <= $2
        ), numbered AS (
            SELECT m.*, sum(m.starts) OVER (PARTITION BY m.account_id ORDER BY m.t, m.id COLLATE "C") AS burst
              FROM marked m
        )
        SELECT n.account_id,
               array_agg(n.id ORDER BY n.t, n.id COLLATE "C") AS ids,
               array_agg(n.t ORDER BY n.t, n.id COLLATE "C") AS times,
               array_agg(n.device_id ORDER BY n.t, n.id COLLATE "C") AS devices,
               array_agg(n.amount ORDER BY n.t, n.id COLLATE "C") AS amounts,
               array_agg(n.status ORDER BY n.t, n.id COLLATE "C") AS statuses
          FROM numbered n
         GROUP BY n.account_id, n.burst
        HAVING bool_or(n.fresh) AND (count(*) >= $3 OR min(n.t) < $5)
    $q$, rel, t_col, id_col, extra) USING p_since, p_window, greatest(p_min_count, 2), seen, first_new, p_until,
                                          coalesce(p_exclude, '{}')
    LOOP
        IF b.times[1] >= first_new THEN
            account_id := b.account_id; ids := b.ids; times := b.times; devices := b.devices;
            amounts := b.amounts; statuses := b.statuses;
            RETURN NEXT;
        ELSE  -- at most one such burst per account: a burst starting in [first_new - window, first_new)
            back_accounts := back_accounts || b.account_id;  -- is the only one starting before first_new
        END IF;
    END LOOP;
    -- 2. The few bursts that started before first_new: each is its account's earliest burst holding a
    --    fresh row. Read those accounts from further back, the lookback doubling each round, until each
    --    burst's first row has nothing within the window before it that the round could have missed
    --    (a round reads each account through (account_id, time) from lo on; the bursts found early
    --    are reported, the others read again from further back). No recursive query: on Citus one
    --    runs on a single shard only.
    lo := first_new - p_window;
    WHILE cardinality(back_accounts) > 0 LOOP
        lo := lo - lookback;
        lookback := lookback * 2;
        more := '{}';
        FOR b IN EXECUTE format($q$
            WITH marked AS (
                SELECT r.account_id, r.%3$I AS id, r.%2$I AS t, r.device_id, %4$s,
                       r.%2$I >= $1 AND r.%2$I < $6 AND (age(r.row_xmin) <= $7) IS NOT FALSE AS fresh,
                       CASE WHEN lag(r.%2$I) OVER o IS NULL OR r.%2$I - lag(r.%2$I) OVER o > $2
                            THEN 1 ELSE 0 END AS starts
                  FROM %1$s r
                 WHERE r.account_id = ANY ($4) AND r.%2$I >= $5 AND r.%2$I < $6 + $2
                WINDOW o AS (PARTITION BY r.account_id ORDER BY r.%2$I, r.%3$I COLLATE "C")
            ), numbered AS (
                SELECT m.*, sum(m.starts) OVER (PARTITION BY m.account_id ORDER BY m.t, m.id COLLATE "C") AS burst
                  FROM marked m
            ), bursts AS (         -- the bursts holding a fresh row, and which is each account's earliest
                SELECT n.account_id,
                       array_agg(n.id ORDER BY n.t, n.id COLLATE "C") AS ids,
                       array_agg(n.t ORDER BY n.t, n.id COLLATE "C") AS times,
                       array_agg(n.device_id ORDER BY n.t, n.id COLLATE "C") AS devices,
                       array_agg(n.amount ORDER BY n.t, n.id COLLATE "C") AS amounts,
                       array_agg(n.status ORDER BY n.t, n.id COLLATE "C") AS statuses,
                       n.burst = min(n.burst) OVER (PARTITION BY n.account_id) AS earliest
                  FROM numbered n
                 GROUP BY n.account_id, n.burst
                HAVING bool_or(n.fresh)
            )
            SELECT b.*, b.times[1] - $2 >= $5 OR NOT isfinite(b.times[1]) AS complete
              FROM bursts b
             WHERE b.earliest
        $q$, rel, t_col, id_col, extra)
        USING p_since, p_window, p_min_count, back_accounts, lo, p_until, seen
        LOOP
            IF NOT b.complete THEN
                more := more || b.account_id;
            ELSIF cardinality(b.ids) >= p_min_count THEN
                account_id := b.account_id; ids := b.ids; times := b.times; devices := b.devices;
                amounts := b.amounts; statuses := b.statuses;
                RETURN NEXT;
            END IF;
        END LOOP;
        back_accounts := more;
    END LOOP;
END
$$;
COMMENT ON FUNCTION monitor.find_bursts(text, interval, integer, timestamptz, timestamptz, integer, text[]) IS
    'Maximal bursts (each row within the window of the previous) that reach a row at or after since '
    '(and before until: a backfill''s slice); rows of transactions older than p_seen are context only; '
    'the accounts of p_exclude are left out.';
