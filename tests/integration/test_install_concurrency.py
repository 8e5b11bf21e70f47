"""Concurrent and interrupted installs (issue "Foundation"): 20 installs at once end in one
consistent schema, and an install killed with SIGKILL never blocks the next one."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
from yoyo import get_backend

from tests.foundation_support import (DETECTORS, LEDGER_MIGRATIONS, MONITOR_MIGRATIONS, applied_migrations,
                                      cron_jobs, dbname, drop_cron_jobs, expected_job_names, monitorctl,
                                      pg_dump_schema, popen_monitorctl, schema_diff)
from monitorctl.db import yoyo_uri
from monitorctl.install import MIGRATION_TABLE

ALL_MIGRATIONS = MONITOR_MIGRATIONS | LEDGER_MIGRATIONS


@pytest.fixture
def target(pg_server, fresh_db):
    """A fresh database whose pg_cron jobs are removed afterwards (dropping it would leave them)."""
    yield fresh_db
    drop_cron_jobs(pg_server, dbname(fresh_db))


def assert_installed_once(pg_server, dsn: str) -> None:
    """Every migration applied and logged exactly once, the registry complete, each job once."""
    with psycopg.connect(dsn, autocommit=True) as c:
        assert applied_migrations(c) == sorted(ALL_MIGRATIONS)
        applies = dict(c.execute("select migration_id, count(*) from monitor._yoyo_log"
                                 " where operation = 'apply' group by 1").fetchall())
        assert applies == {m: 1 for m in ALL_MIGRATIONS}
        assert {r[0] for r in c.execute("select name from monitor.detectors")} == DETECTORS
        assert c.execute("select count(*) from monitor.yoyo_lock").fetchone()[0] == 0
        assert c.execute("select count(*) from pg_proc where proname = 'run_detector'"
                         " and pronamespace = 'monitor'::regnamespace").fetchone()[0] == 1
    if pg_server.has_cron:
        assert set(cron_jobs(pg_server, dbname(dsn))) == expected_job_names(pg_server, dbname(dsn))


def test_twenty_concurrent_installs_leave_one_consistent_schema(pg_server, target, db):
    procs = [popen_monitorctl(target, "install", "--with-ledger") for _ in range(20)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    failed = [(rc, err) for rc, _out, err in results if rc != 0]
    assert not failed, failed[:3]
    # exactly one of them applied the migrations; the others found nothing pending
    appliers = [err for _rc, _out, err in results if "applied migration 0001.monitor-schema" in err]
    assert len(appliers) == 1
    assert_installed_once(pg_server, target)
    # the same schema as a single, uncontended install (the session's template database)
    single, concurrent = pg_dump_schema(db), pg_dump_schema(target)
    assert concurrent == single, schema_diff(single, concurrent)


def _wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _blocked_install_query(conn) -> str | None:
    """The statement an install's connection is waiting on for a lock, if any."""
    row = conn.execute(
        "select query from pg_stat_activity where application_name = 'monitorctl'"
        " and wait_event_type = 'Lock' and datname = current_database() limit 1").fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("stage", ["inside a migration", "recording a migration"])
def test_install_killed_while_holding_the_yoyo_lock_does_not_block_the_next(pg_server, target, stage):
    with psycopg.connect(target, autocommit=True) as c:
        c.execute("create schema monitor")
        # yoyo's bookkeeping tables, as the first install creates them
        backend = get_backend(yoyo_uri(target), migration_table=MIGRATION_TABLE)
        backend.ensure_internal_schema_updated()
        backend.connection.close()
    blocker = psycopg.connect(target)  # holds a lock the install needs, in an open transaction
    try:
        if stage == "inside a migration":
            blocker.execute("create type monitor.finding as (x int)")  # 0001's CREATE TYPE waits on this
        else:
            blocker.execute(f"lock table monitor.{MIGRATION_TABLE} in share mode")  # recording it waits
        proc = popen_monitorctl(target, "install", "--with-ledger")
        with psycopg.connect(target, autocommit=True) as watch:
            waiting = _wait_for(lambda: _blocked_install_query(watch), "the install to block")
            assert watch.execute("select count(*) from monitor.yoyo_lock").fetchone()[0] == 1, waiting
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL
    finally:
        blocker.rollback()
        blocker.close()

    started = time.monotonic()
    result = monitorctl(target, "install", "--with-ledger", timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20  # no waiting out a stale lock
    assert "applied migration 0001.monitor-schema" in result.stderr
    assert_installed_once(pg_server, target)


def test_installs_killed_at_arbitrary_points_do_not_block_the_next(pg_server, target):
    for delay in (0.15, 0.3, 0.45, 0.6):
        proc = popen_monitorctl(target, "install", "--with-ledger")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    result = monitorctl(target, "install", "--with-ledger", timeout=60)
    assert result.returncode == 0, result.stderr
    assert_installed_once(pg_server, target)
