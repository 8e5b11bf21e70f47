"""pg_cron scheduling (docs/operations.md): find pg_cron, then make its `monitor.*` jobs match the registry.

pg_cron lives in one database per cluster (``cron.database_name``). When that is the monitored
database, jobs are ``monitor.<name>``; otherwise they are created there with
``cron.schedule_in_database`` and named ``monitor.<database>.<name>``. A job is this database's when
its name is the prefix and a name without dots (a detector's, or a maintenance job's), and it runs in
this database (or is its prune-cron job, which runs in pg_cron's): database ``cx`` never takes the
jobs of ``cx.y``. Every job command first pins its search_path, so that nothing planted in a schema
of the job owner's default path is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from . import db
from .db import connect, query, with_dbname
from .errors import MonitorError

PIN = "SET search_path = pg_catalog, pg_temp; "  # the first statement of every job command
MAINTENANCE = {
    "prune": ("17 3 * * *", "CALL monitor.prune()"),
    "snapshot": ("*/5 * * * *", "SELECT monitor.snapshot()"),
    "refresh": ("3 * * * *", "SELECT monitor.refresh()"),
}
CRON_PRUNE_BATCH = 50000  # rows of pg_cron's run records the daily prune-cron job deletes at most


@dataclass
class CronSite:
    conn: psycopg.Connection  # a connection to the cron database
    database: str  # cron.database_name
    dbname: str  # the monitored database
    version: str
    own_conn: bool

    @property
    def local(self) -> bool:
        return self.database == self.dbname

    @property
    def prefix(self) -> str:
        return "monitor." if self.local else f"monitor.{self.dbname}."

    def jobs_filter(self) -> dict:
        """The parameters of the named queries that pick this database's jobs (cron_jobs, cron_runs_*)."""
        return {"local": self.local, "dbname": self.dbname, "prefix": self.prefix, "cron_db": self.database}

    def close(self) -> None:
        if self.own_conn:
            self.conn.close()


@dataclass
class SyncReport:
    cron_database: str
    version: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:2])


def cron_database(conn) -> str | None:
    """cron.database_name. Only superusers (and pg_read_all_settings) may read that setting: once
    monitor is installed, monitor.cron_database() reads it with the rights of monitor's owner."""
    if conn.execute(query("has_cron_database_function")).fetchone()[0]:
        return db.value(conn, "cron_database")
    try:
        with conn.transaction():
            return conn.execute(query("cron_database_setting")).fetchone()[0] or None
    except psycopg.errors.InsufficientPrivilege:
        return None


def enabled(conn) -> bool:
    """False after `install --no-schedule`, until an install without it: pg_cron is left alone."""
    return conn.execute(query("scheduling_enabled")).fetchone()[0]


def locate(conn, dsn: str) -> tuple[CronSite | None, str]:
    """Where pg_cron is, or (None, why scheduling is off)."""
    cron_db = cron_database(conn)
    dbname = conn.info.dbname
    if not cron_db:
        return None, "pg_cron is not loaded on this server (add it to shared_preload_libraries)"
    if cron_db == dbname:
        cconn, own = conn, False
    else:
        try:
            cconn, own = connect(with_dbname(dsn, cron_db)), True
        except MonitorError as exc:
            return None, f"pg_cron's database {cron_db} cannot be reached: {exc}"
    row = cconn.execute(query("cron_version")).fetchone()
    if not row:
        if own:
            cconn.close()
        return None, f"pg_cron is loaded but not created: run CREATE EXTENSION pg_cron in database {cron_db}"
    return CronSite(cconn, cron_db, dbname, row[0], own), ""


def desired_jobs(conn, site: CronSite) -> dict[str, tuple[str, str, str]]:
    """Job name -> (schedule, command, database it runs in)."""
    jobs = {}
    for name, sched, timeout, sub_minute in conn.execute(query("enabled_detectors")):
        if sub_minute and version_tuple(site.version) < (1, 5):
            sched = "* * * * *"  # pg_cron before 1.5 has minute granularity only
        command = sql.SQL("SET statement_timeout = {}; SELECT monitor.run_detector({})").format(
            sql.Literal(timeout), sql.Literal(name)).as_string(conn)
        jobs[site.prefix + name] = (sched, PIN + command, site.dbname)
    for name, (sched, command) in MAINTENANCE.items():
        jobs[site.prefix + name] = (sched, PIN + command, site.dbname)
    # pg_cron's run records of this database's jobs: deleted in the cron database itself, in a bounded
    # batch a day, by the query `monitorctl prune` runs (with its values written in), wherever pg_cron
    # lives; monitor.prune leaves them alone (it cannot reach another database)
    days, _batch = conn.execute(query("cron_runs_days")).fetchone()
    command = psycopg.ClientCursor(conn).mogrify(query("cron_runs_prune"), cron_runs_args(site, days, CRON_PRUNE_BATCH))
    jobs[site.prefix + "prune-cron"] = ("27 3 * * *", PIN + " ".join(command.split()), site.database)
    return jobs


def existing_jobs(site: CronSite) -> dict[str, tuple]:
    rows = site.conn.execute(query("cron_jobs"), site.jobs_filter()).fetchall()
    return {r[1]: r for r in rows}


def _schedule(site: CronSite, name: str, sched: str, command: str, database: str) -> None:
    args = {"name": name, "schedule": sched, "command": command, "database": database}
    db.value(site.conn, "cron_schedule" if database == site.database else "cron_schedule_in_database", args)


def _unschedule(site: CronSite, jobid: int) -> None:
    db.value(site.conn, "cron_unschedule", {"jobid": jobid})


def cron_runs_args(site: CronSite, days: int, batch: int) -> dict:
    """The parameters of cron_runs_count and cron_runs_prune: this database's jobs' run records older
    than ``days``, ``batch`` at a time."""
    return site.jobs_filter() | {"days": int(days), "batch": int(batch)}


def prune_runs(conn, dsn: str, dry_run: bool = False) -> tuple[int | None, str]:
    """pg_cron's run records of this database's jobs older than retention.cron_runs_days, deleted (or
    counted) in pg_cron's database (this one or another), in batches of retention.batch_size, each
    committed: the same query the daily prune-cron job runs there (desired_jobs), the one place
    these records are pruned (docs/operations.md, "Retention").

    Returns (rows, note): rows is None when there is nothing to do (pg_cron absent, or its records
    not ours to delete; the note says why)."""
    site, why = locate(conn, dsn)
    if site is None:
        return None, why
    try:
        days, batch = conn.execute(query("cron_runs_days")).fetchone()
        args = cron_runs_args(site, days, batch)
        if dry_run:
            return db.value(site.conn, "cron_runs_count", args), ""
        total = 0
        while True:  # bounded batches, each committed (the connection is in autocommit)
            n = db.run(site.conn, "cron_runs_prune", args)
            total += n
            if n < batch:
                return total, ""
    except psycopg.errors.InsufficientPrivilege as exc:
        return None, f"pg_cron's run records in {site.database} were left alone: {exc.diag.message_primary}"
    finally:
        site.close()


def mark_scheduled(conn, names: list[str]) -> None:
    """Record which detectors have a pg_cron job (detector_health judges only those)."""
    conn.execute(query("mark_scheduled"), (names, names))


def sync(conn, dsn: str) -> tuple[SyncReport | None, str]:
    """Create, update and remove this database's jobs so they match the enabled detectors."""
    if not enabled(conn):
        return None, ("`monitorctl install --no-schedule` was given: pg_cron's jobs are left as they are "
                      "(run `monitorctl install` to schedule again)")
    site, why = locate(conn, dsn)
    if site is None:
        mark_scheduled(conn, [])
        return None, why
    try:
        report = SyncReport(site.database, site.version)
        want = desired_jobs(conn, site)
        have = existing_jobs(site)
        for name, (sched, command, database) in want.items():
            row = have.get(name)
            if row and (row[2], row[3], row[4], row[5]) == (sched, command, database, True):
                report.unchanged.append(name)
                continue
            if row:  # unschedule by id: 1.4's upsert does not move a job between databases
                _unschedule(site, row[0])
                report.updated.append(name)
            else:
                report.created.append(name)
            _schedule(site, name, sched, command, database)
        for name, row in have.items():
            if name not in want:
                _unschedule(site, row[0])
                report.removed.append(name)
        mark_scheduled(conn, [n[len(site.prefix):] for n in want if n[len(site.prefix):] not in MAINTENANCE])
        return report, ""
    finally:
        site.close()


def remove_all(conn, dsn: str) -> int:
    site, _why = locate(conn, dsn)
    if site is None:
        return 0
    try:
        have = existing_jobs(site)
        for row in have.values():
            _unschedule(site, row[0])
        if db.value(conn, "has_detectors"):
            mark_scheduled(conn, [])
        return len(have)
    finally:
        site.close()
