"""prune: retention now (docs/operations.md, "Retention"), the same work as the daily `monitor.prune`
pg_cron job; Monitor.prune (monitorctl.api) does it."""

from __future__ import annotations

from typing import Optional

import typer

from .. import output
from ..output import Column
from .common import FORMAT_OPTION, Format, monitor_of, say


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
    with monitor_of(ctx) as monitor:
        result = monitor.prune(dry_run=dry_run, events_days=events_days, history_days=history_days)
    if result.note:
        say(f"note: {result.note}")
    rows = [{"table": t, "rows": n} for t, n in result.counts.items()]
    output.document({"dry_run": dry_run, "would_delete" if dry_run else "deleted": result.counts}, fmt.value,
                    lambda: output.table(rows, [Column("table", "TABLE"),
                                                Column("rows", "WOULD DELETE" if dry_run else "DELETED", "int")]),
                    rows, ["table", "rows"])
    if fmt is Format.table:
        total = sum(result.counts.values())
        say(f"{'would delete' if dry_run else 'deleted'} {total} row{'s' if total != 1 else ''}"
            + (" (dry run: nothing was deleted)" if dry_run else ""))


def register(app: typer.Typer) -> None:
    app.command()(prune)
