"""End to end through a real pg_cron tick: the one test that waits for the scheduler."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.foundation_support import (clean_cron_database, cron_jobs, monitorctl,
                                      skip_unless_cron_database_is_ours)


@pytest.mark.slow
def test_pg_cron_runs_the_snapshot_job_installed_by_monitorctl(pg_server):
    dsn = skip_unless_cron_database_is_ours(pg_server)
    cron_db = pg_server.cron_database
    try:
        result = monitorctl(dsn, "install", "--with-ledger")
        assert result.returncode == 0, result.stderr
        with psycopg.connect(dsn, autocommit=True) as c:
            jobid = c.execute("select jobid from cron.job where jobname = 'monitor.snapshot'"
                              " and database = %s", (cron_db,)).fetchone()[0]
            c.execute("insert into ledger.accounts (account_id, balance) values ('card-1', 5)")
            c.execute("insert into ledger.transactions (txn_id, account_id, amount, status)"
                      " values ('t-1', 'card-1', 5, 'success')")
            since = c.execute("select clock_timestamp()").fetchone()[0]
            c.execute("select cron.alter_job(%s, schedule => '* * * * *')", (jobid,))
            deadline = time.monotonic() + 75
            run = None
            while time.monotonic() < deadline:
                run = c.execute("select status, return_message from cron.job_run_details where jobid = %s"
                                " and start_time > %s and status in ('succeeded', 'failed')"
                                " order by runid desc limit 1", (jobid, since)).fetchone()
                if run:
                    break
                time.sleep(1)
            assert run is not None, "pg_cron did not run monitor.snapshot within 75 s"
            assert run[0] == "succeeded", run
            snap = c.execute("select txn_last_hour, successes from monitor.health_snapshots"
                             " where taken_at > %s order by snapshot_id desc limit 1", (since,)).fetchone()
            assert snap == (1, 1)
    finally:
        clean_cron_database(pg_server, dsn)
    assert {name for name in cron_jobs(pg_server, cron_db) if name.startswith("monitor.")} == set()
