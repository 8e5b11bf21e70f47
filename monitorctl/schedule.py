"""pg_cron scheduling (CONTRACT §5): find pg_cron, then make its `monitor.*` jobs match the registry.

pg_cron lives in one database per cluster (``cron.database_name``). When that is the monitored
database, jobs are ``monitor.<name>``; otherwise they are created there with
``cron.schedule_in_database`` and named ``monitor.<database>.<name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .db import connect, query, with_dbname
from .errors import MonitorError

MAINTENANCE = {
    "prune": ("17 3 * * *", "CALL monitor.prune()"),
    "snapshot": ("*/5 * * * *", "SELECT monitor.snapshot()"),
    "refresh": ("3 * * * *", "SELECT monitor.refresh()"),
}
CRON_PRUNE = ("DELETE FROM cron.job_run_details WHERE runid IN (SELECT d.runid FROM cron.job_run_details d "
              "JOIN cron.job j USING (jobid) WHERE starts_with(j.jobname, {prefix}) "
              "AND d.end_time < now() - make_interval(days => {days}) LIMIT 50000)")
SECONDS = re.compile(r"^\s*\d+\s+seconds?\s*$")


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


def locate(conn, dsn: str) -> tuple[CronSite | None, str]:
    """Where pg_cron is, or (None, why scheduling is off)."""
    cron_db, dbname, _user = conn.execute(query("cron_site")).fetchone()
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
    for name, sched, timeout in conn.execute(query("enabled_detectors")):
        if SECONDS.match(sched) and version_tuple(site.version) < (1, 5):
            sched = "* * * * *"  # pg_cron before 1.5 has minute granularity only
        command = sql.SQL("SET statement_timeout = {}; SELECT monitor.run_detector({})").format(
            sql.Literal(timeout), sql.Literal(name)).as_string(conn)
        jobs[site.prefix + name] = (sched, command, site.dbname)
    for name, (sched, command) in MAINTENANCE.items():
        jobs[site.prefix + name] = (sched, command, site.dbname)
    if not site.local:
        # monitor.prune cannot reach pg_cron's run records from the monitored database: this job
        # deletes this database's jobs' records in the cron database itself, in a bounded batch a day
        days = conn.execute(query("cron_runs_days")).fetchone()[0]
        command = sql.SQL(CRON_PRUNE).format(prefix=sql.Literal(site.prefix), days=sql.Literal(int(days)))
        jobs[site.prefix + "prune-cron"] = ("27 3 * * *", command.as_string(conn), site.database)
    return jobs


def existing_jobs(site: CronSite) -> dict[str, tuple]:
    rows = site.conn.execute(query("cron_jobs"),
                             {"local": site.local, "dbname": site.dbname, "prefix": site.prefix}).fetchall()
    return {r[1]: r for r in rows}


def _schedule(site: CronSite, name: str, sched: str, command: str, database: str) -> None:
    if database == site.database:
        site.conn.execute("select cron.schedule(%s, %s, %s)", (name, sched, command))
    else:
        site.conn.execute("select cron.schedule_in_database(%s, %s, %s, %s)", (name, sched, command, database))


def mark_scheduled(conn, names: list[str]) -> None:
    """Record which detectors have a pg_cron job (detector_health judges only those)."""
    conn.execute(query("mark_scheduled"), (names, names))


def sync(conn, dsn: str) -> tuple[SyncReport | None, str]:
    """Create, update and remove this database's jobs so they match the enabled detectors."""
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
                site.conn.execute("select cron.unschedule(%s::bigint)", (row[0],))
                report.updated.append(name)
            else:
                report.created.append(name)
            _schedule(site, name, sched, command, database)
        for name, row in have.items():
            if name not in want:
                site.conn.execute("select cron.unschedule(%s::bigint)", (row[0],))
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
            site.conn.execute("select cron.unschedule(%s::bigint)", (row[0],))
        if conn.execute("select to_regclass('monitor.detectors')").fetchone()[0]:
            mark_scheduled(conn, [])
        return len(have)
    finally:
        site.close()


def jobs(conn, dsn: str) -> tuple[CronSite | None, str, dict]:
    """pg_cron state for status: the site, why it is off, and this database's jobs."""
    site, why = locate(conn, dsn)
    if site is None:
        return None, why, {}
    try:
        return site, "", existing_jobs(site)
    finally:
        site.close()
