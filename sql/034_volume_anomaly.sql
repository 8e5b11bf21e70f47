-- volume_anomaly (docs/detectors.md): the last complete UTC hour's transaction count against the same
-- hour of the week over the previous `baseline_days`: it fires when the count deviates from the
-- samples' mean by more than sigma x max(sample stddev, sqrt(mean), 1) x sqrt(1 + 1/samples). Hourly counts come from a materialized view
-- (hours with no transactions count as 0 once the source has data), refreshed CONCURRENTLY by the
-- monitor.refresh pg_cron job, and by the runner when it is older than an hour. On a Citus cluster
-- the refresh's count runs on the shards, each by its worker's clock: its 57 days' lower bound keeps
-- a day's margin over the longest baseline (56 days), so a worker's now() a moment apart changes nothing.

-- A transfer counts once (its debit leg). A baseline made before that (0.1.0) is made again.
DO $$
BEGIN
    IF pg_catalog.pg_get_viewdef(pg_catalog.to_regclass('monitor.volume_hourly')) NOT LIKE '%is_primary%' THEN
        DROP MATERIALIZED VIEW monitor.volume_hourly;
    END IF;
END
$$;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor.volume_hourly AS
SELECT date_trunc('hour', t.created_at AT TIME ZONE 'UTC') AS hour_utc, count(*) AS txns
  FROM monitor.src_transactions t
 WHERE t.created_at >= date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '57 days'
   AND t.is_primary
 GROUP BY 1
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS volume_hourly_hour ON monitor.volume_hourly (hour_utc);
COMMENT ON MATERIALIZED VIEW monitor.volume_hourly IS
    'Transactions per UTC hour over the last 57 days: the baseline of volume_anomaly.';
-- Made again empty (the source views were replaced, or dropped by someone's DROP ... CASCADE): its
-- next run builds it, instead of failing until the hourly refresh job comes round.
DELETE FROM monitor.watermarks
 WHERE detector = 'volume_anomaly.baseline'
   AND NOT (SELECT m.ispopulated FROM pg_catalog.pg_matviews m
             WHERE m.schemaname = 'monitor' AND m.matviewname = 'volume_hourly');

CREATE OR REPLACE FUNCTION monitor.refresh_volume_baseline() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    IF (SELECT ispopulated FROM pg_matviews WHERE schemaname = 'monitor' AND matviewname = 'volume_hourly') THEN
        REFRESH MATERIALIZED VIEW CONCURRENTLY monitor.volume_hourly;
    ELSE
        REFRESH MATERIALIZED VIEW monitor.volume_hourly;
    END IF;
    INSERT INTO monitor.watermarks AS w (detector, high_water) VALUES ('volume_anomaly.baseline', now())
    ON CONFLICT (detector) DO UPDATE SET high_water = excluded.high_water, updated_at = now();
END
$$;

-- Refresh the baseline when it predates the current hour (the runner calls this first).
CREATE OR REPLACE FUNCTION monitor.prepare_volume_anomaly(params jsonb, since timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, monitor, pg_temp AS $$
BEGIN
    IF coalesce((SELECT high_water FROM monitor.watermarks WHERE detector = 'volume_anomaly.baseline'), '-infinity')
       < date_trunc('hour', now()) THEN
        PERFORM monitor.refresh_volume_baseline();
    END IF;
END
$$;

-- The anomaly test for the hour starting at p_hour (UTC, timestamp without time zone). The hour's own
-- count is a statement of its own over the source view, with its bounds as parameters: on a Citus
-- cluster it runs on the shards (each counts its rows, the coordinator adds them up), where the
-- baseline, a table of monitor's, does not exist; the rest reads the baseline alone. (A function in
-- LANGUAGE sql cannot do this: Citus cannot plan a distributed query with its parameters.)
CREATE OR REPLACE FUNCTION monitor.volume_anomaly_at(params jsonb, p_hour timestamp)
RETURNS SETOF monitor.finding
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
DECLARE
    v_observed bigint;  -- the hour's count
BEGIN
    -- a one-shot plan: the planner sees the actual hour (an index range scan)
    EXECUTE $q$
    SELECT count(*) FROM monitor.src_transactions t
     WHERE t.created_at >= $1 AND t.created_at < $2 AND t.is_primary $q$
    INTO v_observed USING p_hour AT TIME ZONE 'UTC', (p_hour + interval '1 hour') AT TIME ZONE 'UTC';
    RETURN QUERY
    WITH first_hour AS (
        SELECT min(v.hour_utc) AS h FROM monitor.volume_hourly v
    ), samples AS (
        SELECT p_hour - make_interval(days => 7 * k) AS hour_utc,
               coalesce((SELECT v.txns FROM monitor.volume_hourly v
                          WHERE v.hour_utc = p_hour - make_interval(days => 7 * k)), 0) AS txns
          FROM generate_series(1, (params ->> 'baseline_days')::integer / 7) k, first_hour f
         WHERE p_hour - make_interval(days => 7 * k) >= f.h
    ), stats AS (
        SELECT count(*) AS n, avg(s.txns) AS mean, coalesce(stddev_samp(s.txns), 0) AS sd,
               jsonb_agg(jsonb_build_object('hour', s.hour_utc, 'txns', s.txns) ORDER BY s.hour_utc) AS rows
          FROM samples s
    ), judged AS (
        SELECT v_observed AS observed, s.*,
               -- sqrt(1 + 1/n): a new hour deviates from a mean of n samples by more than one hour
               -- deviates from the true mean (a prediction interval), see CHANGELOG.md
               (params ->> 'sigma')::numeric * greatest(s.sd, sqrt(s.mean), 1)
                   * sqrt(1 + 1.0 / greatest(s.n, 1)) AS allowed
          FROM stats s
    )
    SELECT 'system', 'system', NULL::text, NULL::numeric,
           format('%s transactions in the hour from %s UTC, expected about %s (allowed deviation %s)',
                  j.observed, p_hour, round(j.mean, 1), round(j.allowed, 1)),
           jsonb_build_object('hour_utc', p_hour, 'observed', j.observed, 'baseline_mean', round(j.mean, 2),
                              'baseline_stddev', round(j.sd, 2), 'allowed_deviation', round(j.allowed, 2),
                              'samples', j.rows, 'sigma', params -> 'sigma',
                              'baseline_days', params -> 'baseline_days', 'min_samples', params -> 'min_samples')
      FROM judged j
     WHERE j.n >= (params ->> 'min_samples')::integer
       AND abs(j.observed - j.mean) > j.allowed;
END
$$;

CREATE OR REPLACE FUNCTION monitor.detect_volume_anomaly(params jsonb, since timestamptz)
RETURNS SETOF monitor.finding
LANGUAGE sql STABLE SET search_path = pg_catalog, monitor, pg_temp AS $$
    SELECT * FROM monitor.volume_anomaly_at(params,
        date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '1 hour')
$$;
COMMENT ON FUNCTION monitor.detect_volume_anomaly(jsonb, timestamptz) IS
    'volume_anomaly: last complete UTC hour''s count vs the same hour of the week in the baseline.';
