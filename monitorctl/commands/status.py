"""status: pg_cron, every detector, open events, migrations and sources at a glance; --health for probes."""

from __future__ import annotations

import typer

from .. import output
from ..api import STATUS_DETECTOR_KEYS as DETECTOR_KEYS
from ..model import SEVERITIES
from ..output import Column
from .common import FORMAT_OPTION, Format, monitor_of

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
    for sev in SEVERITIES:
        n, a = ev[sev]["open"], ev[sev]["acknowledged"]
        text = f"{sev} {n + a}" + (f" ({a} acknowledged)" if a else "")
        parts.append(output.paint(text, "severity", sev, output.use_colour() and n + a > 0))
    lines.append("active events: " + ", ".join(parts))
    n = doc["notifications"]
    if not n["routes"]:
        lines.append("notifications: no routes, nothing is sent (monitorctl routes add --receiver NAME)")
    else:
        lines.append(f"notifications: {n['routes']} route(s)")
        for r in n["receivers"]:
            lines.append(f"  {r['name']} ({r['type']}): circuit {r['circuit']}, {r['pending']} pending, "
                         f"{r['failed']} to retry, {r['dead']} given up"
                         + (f", last sent {output.age(r['last_sent'])}" if r["last_sent"] else ""))
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
    with monitor_of(ctx) as monitor:
        doc = monitor.status()
    h = doc["health"]
    text = (lambda: "ok" if h["healthy"] else "unhealthy: " + "; ".join(h["problems"])) if health else \
        (lambda: describe(doc))
    output.document(doc, fmt.value, text, doc["detectors"], DETECTOR_KEYS)
    if health and not doc["health"]["healthy"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)
