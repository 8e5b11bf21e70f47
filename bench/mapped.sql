-- The mapped-ledger figure (bench/mapped.py).

-- query: secondary_indexes
-- every index of the ledger's tables but their primary keys
select n.nspname, c.relname
  from pg_index x
  join pg_class c on c.oid = x.indexrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'ledger' and not x.indisprimary

-- query: run_durations
-- milliseconds of each detector's latest run since a time
select detector, round(extract(epoch from max(finished_at - started_at)) * 1000, 2)::float
  from monitor.detector_runs where started_at >= %s group by detector order by detector
