"""Helpers for the install / uninstall / scheduling tests: the real CLI as a subprocess, cron.job
rows, and a normalised schema dump."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from monitorctl import embedded

DETECTORS = {
    "failed_debit", "balance_mismatch", "balance_chain", "consecutive_failures", "negative_balance", "stuck_pending",
    "failure_rate", "duplicate_scan", "concurrent_txn", "volume_anomaly", "detector_health",
}
MAINTENANCE = {"prune", "snapshot", "refresh"}
TABLES = {"detectors", "events", "alert_history", "health_snapshots", "detector_runs", "settings",
          "watermarks", "account_totals"}
MONITOR_MIGRATIONS = {"0001.monitor-schema", "0002.roles", "0003.account-totals-hash", "0004.watermark-seen",
                      "0005.security", "0006.failure-minutes",
                      "0007.notifications", "0008.counters"}
LEDGER_MIGRATIONS = {"0001.ledger-schema", "0002.failed-indexes", "0003.pinned-search-path"}

_script = Path(sys.executable).parent / "monitorctl"
MONITORCTL = [str(_script)] if _script.exists() else [sys.executable, "-m", "monitorctl"]

# settings from the caller's environment that would change what the CLI does
_SCRUB = ("MONITOR_DSN", "DATABASE_URL", "MONITOR_CONFIG", "MONITOR_FORMAT", "MONITOR_DEBUG")


def cli_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("PG")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def monitorctl(dsn: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed `monitorctl --dsn DSN ARGS...` and return its result (text)."""
    return subprocess.run([*MONITORCTL, "--dsn", dsn, *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), stdin=subprocess.DEVNULL)


def popen_monitorctl(dsn: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*MONITORCTL, "--dsn", dsn, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(), stdin=subprocess.DEVNULL)


def monitorctl_many(dsn: str, commands: list[list[str]], timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """Run several independent `monitorctl --dsn DSN ...` commands at once; results in order."""
    procs = [(cmd, popen_monitorctl(dsn, *cmd)) for cmd in commands]
    results = []
    for cmd, proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return results


def dbname(dsn: str) -> str:
    return conninfo_to_dict(dsn)["dbname"]


def cron_jobs(server: embedded.Server, database: str) -> dict[str, tuple]:
    """pg_cron jobs that run in ``database``: {jobname: (schedule, command, database, active)}."""
    with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as c:
        # jobs running in the cron database for other databases (monitor.<db>.prune-cron) are theirs
        rows = c.execute("select jobname, schedule, command, database, active from cron.job"
                         " where database = %s and not (database = %s and jobname ~ '^monitor\\.[^.]+\\.')"
                         " order by jobname", (database, server.cron_database)).fetchall()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), f"duplicate pg_cron jobs: {names}"
    return {r[0]: r[1:] for r in rows}


def drop_cron_jobs(server: embedded.Server, database: str) -> None:
    """Remove every pg_cron job that runs in ``database`` (test cleanup; a dropped db keeps its jobs)."""
    if not server.has_cron:
        return
    with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as c:
        for (jobid,) in c.execute("select jobid from cron.job where database = %s or jobname = %s",
                                  (database, f"monitor.{database}.prune-cron")).fetchall():
            c.execute("select cron.unschedule(%s::bigint)", (jobid,))


def expected_job_names(server: embedded.Server, database: str, detectors=DETECTORS) -> set[str]:
    local = database == server.cron_database
    prefix = "monitor." if local else f"monitor.{database}."
    return {prefix + n for n in set(detectors) | MAINTENANCE | ({"prune-cron"} if local else set())}


def applied_migrations(conn) -> list[str]:
    return [r[0] for r in conn.execute("select migration_id from monitor._yoyo_migration order by 1")]


# -- schema dump ----------------------------------------------------------------------------------

def pg_dump_schema(dsn: str) -> str:
    """pg_dump --schema-only of schemas monitor and ledger, without yoyo's bookkeeping, normalised."""
    pg_dump = embedded.pg_bindir() / "pg_dump"
    proc = subprocess.run(
        [str(pg_dump), "--schema-only", "--schema=monitor", "--schema=ledger", "--no-owner",
         "--no-privileges", "--exclude-table=monitor._yoyo*", "--exclude-table=monitor.yoyo_lock",
         "--dbname", dsn],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return normalise_dump(proc.stdout)


def normalise_dump(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("--") or re.match(r"^SET \w+", line) or line.startswith("SELECT pg_catalog.set_config"):
            continue
        if line.startswith(("\\restrict", "\\unrestrict")):  # pg_dump >= 15.14: a random key per dump
            continue
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def schema_diff(expected: str, actual: str, limit: int = 60) -> str:
    """A short unified diff of two schema dumps, for assertion messages."""
    import difflib

    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), "expected", "actual",
                                      lineterm="", n=1))
    return "\n".join(lines[:limit]) + ("\n..." if len(lines) > limit else "")


def skip_unless_cron_database_is_ours(server: embedded.Server) -> str:
    """The cron database's DSN, for tests that install into it; skipped when there is no pg_cron, or
    when monitor or ledger is already there (someone else's server: the tests drop both afterwards)."""
    import pytest

    if not server.has_cron:
        pytest.skip(f"the test server has no pg_cron: {server.cron_note}")
    dsn = server.dsn(server.cron_database)
    with psycopg.connect(dsn) as c:
        taken = c.execute("select string_agg(nspname, ', ') from pg_namespace"
                          " where nspname in ('monitor', 'ledger')").fetchone()[0]
    if taken:
        pytest.skip(f"schema {taken} already exists in {server.cron_database}: not touching it")
    return dsn


def clean_cron_database(server: embedded.Server, dsn: str) -> None:
    """Undo an install into the cron database: jobs, monitor and the reference ledger."""
    monitorctl(dsn, "uninstall", "--yes")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("drop schema if exists ledger cascade")
        c.execute("drop schema if exists monitor cascade")
        for (jobid,) in c.execute("select jobid from cron.job where jobname ~ '^monitor\\.[^.]+$'"
                                  " and database = current_database()").fetchall():
            c.execute("select cron.unschedule(%s::bigint)", (jobid,))
