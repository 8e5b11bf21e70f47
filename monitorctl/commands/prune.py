"""prune: retention now (docs/operations.md), the same work as the daily `monitor.prune` pg_cron job.

CALL monitor.prune(...) deletes in bounded batches, committing between them, and reports rows per
table. When pg_cron lives in another database, this database's jobs' rows in cron.job_run_details
are pruned here too, over a second connection (the procedure cannot reach them).
"""

from __future__ import annotations

from typing import Optional

import psycopg
import typer

from .. import output, schedule
from ..db import query
from ..output import Column
from .common import FORMAT_OPTION, Format, dsn_of, installed_connection, say

TABLES = ["events", "alert_history", "health_snapshots", "detector_runs", "cron_job_run_details"]


def prune_remote_cron(conn, dsn: str, dry_run: bool) -> tuple[int | None, str]:
    """Rows of this database's jobs in cron.job_run_details when pg_cron lives elsewhere.

    Returns (rows, note): rows is None when there is nothing to do here (pg_cron absent, or local,
    where monitor.prune already did it).
    """
    site, why = schedule.locate(conn, dsn)
    if site is None:
        return None, why
    try:
        if site.local:
            return None, ""
        days, batch = conn.execute(query("cron_runs_days")).fetchone()
        args = site.jobs_filter() | {"days": days, "batch": batch}
        if dry_run:
            return site.conn.execute(query("cron_runs_count"), args).fetchone()[0], ""
        total = 0
        while True:  # bounded batches, each committed (the connection is in autocommit)
            n = site.conn.execute(query("cron_runs_prune"), args).rowcount
            total += n
            if n < batch:
                return total, ""
    except psycopg.errors.InsufficientPrivilege as exc:
        return None, f"pg_cron's run records in {site.database} were left alone: {exc.diag.message_primary}"
    finally:
        site.close()


def prune(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be deleted; delete nothing."),
    events_days: Optional[int] = typer.Option(
        None, "--events-days", min=0, max=36500, envvar="MONITOR_EVENTS_DAYS",
        help="Delete resolved events resolved more than this many days ago (default: the setting "
             "retention.events_days, 30). Open and acknowledged events are never pruned."),
    history_days: Optional[int] = typer.Option(
        None, "--history-days", min=0, max=36500, envvar="MONITOR_HISTORY_DAYS",
        help="Delete alert history older than this many days, whatever its event's state (default: the "
             "setting retention.history_days, 90)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Apply retention now, in bounded batches: resolved events, alert history, health snapshots,
    detector run records and this package's pg_cron run records older than their retention. Prints
    rows deleted (or, with --dry-run, that would be) per table. Other retention periods come from
    monitor.settings (retention.*), which the daily monitor.prune pg_cron job uses too.

    Example: monitorctl prune --dry-run --events-days 14
    """
    with installed_connection(ctx) as conn:
        cur = conn.execute(query("prune"), {"dry_run": dry_run, "events_days": events_days,
                                            "history_days": history_days})
        counts = dict(zip([d.name for d in cur.description], cur.fetchone()))
        remote, note = prune_remote_cron(conn, dsn_of(ctx), dry_run)
    if remote is not None:
        counts["cron_job_run_details"] = (counts.get("cron_job_run_details") or 0) + remote
    if note:
        say(f"note: {note}")
    rows = [{"table": t, "rows": counts.get(t) or 0} for t in TABLES]
    if fmt is Format.json:
        output.emit(output.dumps({"dry_run": dry_run, "would_delete" if dry_run else "deleted":
                                  {r["table"]: r["rows"] for r in rows}}))
        return
    if fmt is Format.csv:
        output.emit(output.csv_text(rows, ["table", "rows"]))
        return
    output.emit(output.table(rows, [Column("table", "TABLE"),
                                    Column("rows", "WOULD DELETE" if dry_run else "DELETED", "int")]))
    total = sum(r["rows"] for r in rows)
    say(f"{'would delete' if dry_run else 'deleted'} {total} row{'s' if total != 1 else ''}"
        + (" (dry run: nothing was deleted)" if dry_run else ""))


def register(app: typer.Typer) -> None:
    app.command()(prune)
