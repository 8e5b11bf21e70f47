-- Per-minute transaction counts for failure_rate: each run recounts only the minutes that may have
-- changed since its previous run (its late window, the current minute, the minutes of changed rows)
-- and sums the rest from here, instead of recounting its whole window (docs/detectors.md). A cache
-- a full pass rebuilds: unlogged, emptied by a crash, which the next full pass refills.
-- depends: 0005.security

CREATE UNLOGGED TABLE monitor.failure_minutes (
    minute    timestamptz PRIMARY KEY,
    succeeded bigint NOT NULL,
    failed    bigint NOT NULL
);
COMMENT ON TABLE monitor.failure_minutes IS
    'failure_rate''s cache: success and failed transactions created in each minute of its window';
