-- Shared machinery of the burst and run detectors (duplicate_scan, concurrent_txn).
--
-- A burst is a maximal sequence of one account's rows, ordered by time then id (COLLATE "C"),
-- in which each row is within `window` of the previous one (inclusive). The rows a run must
-- examine are those at or after `since`; a burst that reaches back before `since` is followed
-- backwards through the (account_id, time) index, so its first row may be arbitrarily old.

CREATE OR REPLACE FUNCTION monitor.find_bursts(p_source text, p_window interval, p_min_count integer,
                                               p_since timestamptz)
RETURNS TABLE (account_id text, ids text[], times timestamptz[], devices text[], amounts numeric[],
               statuses text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor AS $$
DECLARE
    rel text;
    id_col text;
    t_col text;
    extra text;
BEGIN
    IF p_source = 'scans' THEN
        rel := 'monitor.src_scans'; id_col := 'scan_id'; t_col := 'scanned_at';
        extra := 'NULL::numeric AS amount, NULL::text AS status';
    ELSIF p_source = 'transactions' THEN
        rel := 'monitor.src_transactions'; id_col := 'txn_id'; t_col := 'created_at';
        extra := 'r.amount, r.status';
    ELSE
        RAISE EXCEPTION 'unknown burst source %', p_source;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH RECURSIVE fresh AS (           -- accounts with rows this run must examine
            SELECT r.account_id, min(r.%2$I) AS t0
              FROM %1$s r WHERE r.%2$I >= $1 GROUP BY r.account_id
        ), back (account_id, t) AS (        -- follow the burst backwards from the first fresh row
            SELECT f.account_id, f.t0 FROM fresh f
            UNION ALL
            SELECT b.account_id, p.t
              FROM back b
              CROSS JOIN LATERAL (
                  SELECT r.%2$I AS t FROM %1$s r
                   WHERE r.account_id = b.account_id AND r.%2$I < b.t AND r.%2$I >= b.t - $2
                   ORDER BY r.%2$I LIMIT 1) p
        ), start AS (
            SELECT b.account_id, min(b.t) AS t FROM back b GROUP BY b.account_id
        ), rows AS (
            SELECT r.account_id, r.%3$I AS id, r.%2$I AS t, r.device_id, %4$s,
                   CASE WHEN lag(r.%2$I) OVER w IS NULL OR r.%2$I - lag(r.%2$I) OVER w > $2
                        THEN 1 ELSE 0 END AS starts_burst
              FROM start s JOIN %1$s r ON r.account_id = s.account_id AND r.%2$I >= s.t
            WINDOW w AS (PARTITION BY r.account_id ORDER BY r.%2$I, r.%3$I COLLATE "C")
        ), numbered AS (
            SELECT x.*, sum(x.starts_burst) OVER (PARTITION BY x.account_id ORDER BY x.t, x.id COLLATE "C") AS burst
              FROM rows x
        )
        SELECT n.account_id,
               array_agg(n.id ORDER BY n.t, n.id COLLATE "C"),
               array_agg(n.t ORDER BY n.t, n.id COLLATE "C"),
               array_agg(n.device_id ORDER BY n.t, n.id COLLATE "C"),
               array_agg(n.amount ORDER BY n.t, n.id COLLATE "C"),
               array_agg(n.status ORDER BY n.t, n.id COLLATE "C")
          FROM numbered n
         GROUP BY n.account_id, n.burst
        HAVING count(*) >= $3 AND max(n.t) >= $1
    $q$, rel, t_col, id_col, extra)
    USING p_since, p_window, p_min_count;
END
$$;
COMMENT ON FUNCTION monitor.find_bursts(text, interval, integer, timestamptz) IS
    'Maximal bursts (each row within the window of the previous) that reach a row at or after since.';
