"""Running monitorctl against the session's real PostgreSQL, and setting the scene for it.

`Monitor` drives one installed database: through the installed `monitorctl` as a subprocess (the
acceptance tests) or in-process through Typer's CliRunner (tests/integration/test_cli_*.py, faster).
Events come from tiny custom detectors registered by the tests (docs/custom-detectors.md): each returns the rows
of test.findings that carry its name, so a test says exactly what a run finds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

_script = Path(sys.executable).parent / "monitorctl"
MONITORCTL = [str(_script)] if _script.exists() else [sys.executable, "-m", "monitorctl"]

# the caller's settings that would change what the CLI does
_SCRUB = ("MONITOR_DSN", "DATABASE_URL", "MONITOR_CONFIG", "MONITOR_FORMAT", "MONITOR_DEBUG", "MONITOR_ACTOR",
          "MONITOR_FAIL_ON", "MONITOR_COLOR", "MONITOR_FOLLOW_INTERVAL", "MONITOR_EVENTS_DAYS",
          "MONITOR_HISTORY_DAYS", "NO_COLOR")


def cli_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("PG")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, dsn: str | None = None, timeout: float = 60, **env) -> subprocess.CompletedProcess:
    """`monitorctl [--dsn DSN] ARGS...`, text output, no terminal."""
    cmd = [*MONITORCTL, *(["--dsn", dsn] if dsn else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=cli_env(**env),
                          stdin=subprocess.DEVNULL)


def _default_sigint() -> None:
    # a test run started in the background (`cmd &` without job control) ignores SIGINT, and so would
    # the command: give it Ctrl-C as a terminal gives it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_cli(*args: str, dsn: str) -> subprocess.Popen:
    return subprocess.Popen([*MONITORCTL, "--dsn", dsn, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(), stdin=subprocess.DEVNULL, preexec_fn=_default_sigint)


def dbname(dsn: str) -> str:
    return conninfo_to_dict(dsn)["dbname"]


def with_user(dsn: str, user: str) -> str:
    params = conninfo_to_dict(dsn) | {"user": user}
    return psycopg.conninfo.make_conninfo("", **params)


class Result:
    """What a CliRunner run left, shaped like subprocess.CompletedProcess."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def invoke(*args: str, dsn: str | None = None, **env) -> Result:
    """`monitorctl ARGS...` in this process (Typer's CliRunner), with the same environment scrubbing."""
    from typer.testing import CliRunner

    from monitorctl.cli import app

    scrub = {k: None for k in os.environ if k in _SCRUB or k.startswith("PG")}
    r = CliRunner().invoke(app, [*(["--dsn", dsn] if dsn else []), *args], env=scrub | env,
                           prog_name="monitorctl")
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


class Monitor:
    """One installed database: the CLI bound to it, and SQL to set the scene."""

    def __init__(self, dsn: str, conn: psycopg.Connection, in_process: bool = False):
        self.dsn, self.conn, self.in_process = dsn, conn, in_process
        conn.execute("""
            create schema if not exists test;
            create table if not exists test.findings (
                detector text, subject text, dedup_key text, txn_id text, amount numeric, summary text,
                evidence jsonb default '{}');
        """)

    def cli(self, *args: str, **kw):
        if self.in_process:
            kw.pop("timeout", None)
            return invoke(*args, dsn=self.dsn, **kw)
        return run_cli(*args, dsn=self.dsn, **kw)

    def ok(self, *args: str, **kw):
        r = self.cli(*args, **kw)
        assert r.returncode == 0, f"monitorctl {' '.join(args)} -> {r.returncode}: {r.stderr}"
        return r

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--format", "json").stdout)

    def detector(self, name: str, severity: str = "critical", kind: str = "finding") -> None:
        self.conn.execute(f"""
            create or replace function test.detect_{name}(params jsonb, since timestamptz)
            returns setof monitor.finding language sql set search_path = pg_catalog, pg_temp as $$
                select subject, dedup_key, txn_id, amount, summary, evidence from test.findings
                 where detector = '{name}' $$""")
        self.conn.execute("select monitor.register_detector(%s, %s, %s, %s)",
                          (name, f"test.detect_{name}", severity, kind))

    def find(self, detector: str, key: str, subject: str | None = None, amount=None, summary: str | None = None,
             evidence: dict | None = None, txn_id: str | None = None) -> None:
        self.conn.execute(
            "insert into test.findings values (%s, %s, %s, %s, %s, %s, %s)",
            (detector, subject or f"C-{key}", key, txn_id, amount, summary or f"{detector} on {key}",
             json.dumps(evidence or {"key": key})))

    def forget(self, detector: str, key: str) -> None:
        self.conn.execute("delete from test.findings where detector = %s and dedup_key = %s", (detector, key))

    def run(self, detector: str) -> int:
        return self.conn.execute("select monitor.run_detector(%s)", (detector,)).fetchone()[0]

    def event(self, key: str) -> dict:
        cur = self.conn.cursor(row_factory=dict_row)
        return cur.execute("select * from monitor.events where dedup_key = %s order by event_id desc limit 1",
                           (key,)).fetchone()

    def history(self, event_id: int) -> list[tuple]:
        return self.conn.execute("select transition, actor, note from monitor.alert_history where event_id = %s"
                                 " order by history_id", (event_id,)).fetchall()




def drop_jobs(server, dsn: str) -> None:
    """Remove the pg_cron jobs made for this test's database (a dropped database keeps its jobs)."""
    if not server.has_cron:
        return
    with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as c:
        for (jobid,) in c.execute("select jobid from cron.job where database = %s", (dbname(dsn),)).fetchall():
            c.execute("select cron.unschedule(%s::bigint)", (jobid,))


def cron_jobs(server, dsn: str) -> dict[str, tuple]:
    """This database's pg_cron jobs: {name without the monitor.<db>. prefix: (schedule, command, active)}."""
    prefix = f"monitor.{dbname(dsn)}."
    with psycopg.connect(server.dsn(server.cron_database), autocommit=True) as c:
        rows = c.execute("select jobname, schedule, command, active from cron.job where database = %s",
                         (dbname(dsn),)).fetchall()
    return {r[0].removeprefix(prefix): r[1:] for r in rows}
