"""status: pg_cron, every detector, open events, migrations and sources at a glance; --health for probes."""

from __future__ import annotations

import psycopg
import typer

from .. import __version__, install as inst, output, resources, schedule
from ..db import query
from ..output import Column
from .common import FORMAT_OPTION, Format, dsn_of, installed_connection

DETECTOR_COLUMNS = [
    Column("name", "DETECTOR"),
    Column("enabled", "ENABLED"),
    Column("schedule", "SCHEDULE"),
    Column("last_run", "LAST RUN", "age"),
    Column("duration_seconds", "DURATION", "duration"),
    Column("state", "STATUS"),
    Column("open_events", "OPEN", "int"),
    Column("last_error", "LAST ERROR", flex=True),
]
DETECTOR_KEYS = ["name", "enabled", "severity", "kind", "schedule", "scheduled", "cron_schedule", "last_run",
                 "duration_seconds",
                 "last_status", "last_error", "last_ok", "open_events", "overdue", "state", "problem"]


def rows_of(cur) -> list[dict]:
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def cron_state(conn, dsn: str, dbname: str, user: str) -> tuple[dict, dict]:
    """pg_cron as this database sees it, and this database's jobs by detector name."""
    site, why = schedule.locate(conn, dsn)
    if site is None:
        return {"available": False, "note": why}, {}
    state = {"available": True, "version": site.version, "database": site.database, "jobs": None}
    try:
        have = schedule.existing_jobs(site)
    except psycopg.errors.InsufficientPrivilege as exc:
        state["in_sync"] = None
        state["note"] = (f"role {user} may not read pg_cron's jobs ({exc.diag.message_primary}): "
                         "the owner of schema monitor can check them")
        return state, {}
    finally:
        site.close()
    state["jobs"] = len(have)
    owner = conn.execute("select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'monitor'").fetchone()[0]
    if owner != user:
        state["in_sync"] = None
        state["note"] = f"the jobs belong to {owner}, who installed monitor; role {user} cannot see them"
        return state, {}
    by_detector = {name[len(site.prefix):]: {"schedule": row[2], "active": row[5]} for name, row in have.items()}
    if not schedule.enabled(conn):
        state["in_sync"] = None
        state["note"] = ("scheduling is off (`monitorctl install --no-schedule`): monitorctl leaves pg_cron's jobs "
                         "as they are; `monitorctl install` schedules again")
        return state, by_detector
    want = schedule.desired_jobs(conn, site)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    different = sorted(n for n in set(want) & set(have)
                       if (have[n][2], have[n][3], have[n][4], have[n][5]) != (*want[n], True))
    state.update(in_sync=not (missing or extra or different), missing=missing, extra=extra, different=different)
    return state, by_detector


def judge(conn, detectors: list[dict]) -> None:
    """Each detector's state; failing and overdue as detector_health judges them (docs/detectors.md)."""
    problems = {subject: (problem, summary)
                for subject, problem, summary in conn.execute(query("detector_health_now")).fetchall()}
    for d in detectors:
        problem, summary = problems.get(d["name"], (None, None))
        d["problem"] = summary
        d["overdue"] = problem == "overdue"
        if not d["enabled"]:
            d["state"] = "disabled"
        elif problem in ("failed", "cron_job_failed"):
            d["state"] = "failing"
        elif problem:
            d["state"] = problem
        elif d["last_status"] is None:
            d["state"] = "never run"
        else:
            d["state"] = d["last_status"]
        if problem == "cron_job_failed" and not d["last_error"]:
            d["last_error"] = summary


def source_notes(mapping: dict | None, full_pass: str | None) -> list[str]:
    notes = []
    sources = (mapping or {}).get("sources", {})
    for rel in ("transactions", "accounts"):
        cols = sources.get(rel, {}).get("columns", {})
        if sources and cols.get("updated_at") is None:
            notes.append(f"{rel}.updated_at is not mapped: a change to an old {rel[:-1]} row is caught by "
                         f"balance_mismatch's full pass (every {full_pass or '1 hour'}), not by the next run")
    return notes


def gather(conn, dsn: str) -> dict:
    now, dbname, user, mapping = conn.execute(query("status_misc")).fetchone()
    cron, jobs = cron_state(conn, dsn, dbname, user)
    detectors = rows_of(conn.execute(query("status_detectors")))
    judge(conn, detectors)
    for d in detectors:
        d["cron_schedule"] = jobs.get(d["name"], {}).get("schedule")
        d["duration_seconds"] = d["duration"].total_seconds() if d["duration"] is not None else None
    events = {r[0]: {"open": r[1], "acknowledged": r[2]} for r in conn.execute(query("status_events"))}
    applied = inst.applied_ids(conn) or []
    pending = inst.pending_ids(conn)
    full_pass = next((d["params"].get("full_pass") for d in detectors if d["name"] == "balance_mismatch"), None)
    problems = []
    if events["critical"]["open"]:
        problems.append(f"{events['critical']['open']} critical event(s) open")
    for d in detectors:
        if d["problem"] and d["enabled"]:
            problems.append(d["problem"])
    return {
        "database": dbname,
        "user": user,
        "checked_at": now,
        "monitorctl": __version__,
        "schema": {"version": resources.schema_version(), "applied": applied, "pending": pending},
        "pg_cron": cron,
        "detectors": [{k: d.get(k) for k in DETECTOR_KEYS} for d in detectors],
        "events": events,
        "sources": {"notes": source_notes(mapping, full_pass)},
        "health": {"healthy": not problems, "problems": problems},
    }


def describe(doc: dict) -> str:
    s, c = doc["schema"], doc["pg_cron"]
    lines = [f"monitor schema {s['version']} in database {doc['database']} (as {doc['user']}): "
             + (f"{len(s['pending'])} migration(s) pending, run `monitorctl install`" if s["pending"]
                else "all migrations applied")]
    if c["available"]:
        sync = ("in line with the registry" if c.get("in_sync") else
                "not checked" if c.get("in_sync") is None else
                "NOT in line with the registry (" + "; ".join(
                    f"{k}: {', '.join(c[k])}" for k in ("missing", "extra", "different") if c.get(k))
                + "): run `monitorctl install`")
        jobs = "jobs not readable" if c["jobs"] is None else f"{c['jobs']} jobs, {sync}"
        lines.append(f"pg_cron {c['version']} in database {c['database']}: {jobs}")
        if c.get("note"):
            lines.append(f"  {c['note']}")
    else:
        lines.append(f"pg_cron: not available: {c['note']} (detectors run only with `monitorctl run`)")
    for note in doc["sources"]["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append(output.table(doc["detectors"], DETECTOR_COLUMNS, colour=output.use_colour(),
                              width=output.terminal_width(), now=doc["checked_at"]))
    lines.append("")
    ev = doc["events"]
    parts = []
    for sev in output.SEVERITIES:
        n, a = ev[sev]["open"], ev[sev]["acknowledged"]
        text = f"{sev} {n + a}" + (f" ({a} acknowledged)" if a else "")
        parts.append(output.paint(text, "severity", sev, output.use_colour() and n + a > 0))
    lines.append("active events: " + ", ".join(parts))
    h = doc["health"]
    lines.append("health: " + ("ok" if h["healthy"] else "; ".join(h["problems"])))
    return "\n".join(lines)


def status(
    ctx: typer.Context,
    health: bool = typer.Option(False, "--health", help="Probe mode: print 'ok' or the problems, and exit 1 when "
                                "a critical event is open or an enabled detector is failing or overdue."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The monitor's own state at a glance: pg_cron (version, database, whether its jobs match the
    registry), each detector (enabled, schedule, last run, duration, status, last error, open events),
    active events by severity, migration state. csv: one row per detector.

    Example: monitorctl status --health || page-the-on-call
    """
    with installed_connection(ctx) as conn:
        doc = gather(conn, dsn_of(ctx))
    if fmt is Format.json:
        output.emit(output.dumps(doc))
    elif fmt is Format.csv:
        output.emit(output.csv_text(doc["detectors"], DETECTOR_KEYS))
    elif health:
        h = doc["health"]
        output.emit("ok" if h["healthy"] else "unhealthy: " + "; ".join(h["problems"]))
    else:
        output.emit(describe(doc))
    if health and not doc["health"]["healthy"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)
