"""monitorctl run: detectors now, synchronously, each in its own transaction with its timeout."""

from __future__ import annotations

import datetime as dt
import math
import sys
from typing import List, Optional

import psycopg
import typer
from psycopg.rows import dict_row

from .. import output
from ..db import query
from ..errors import MonitorError, UsageError
from .common import FORMAT_OPTION, Format, installed_connection, say
from .events import parse_since

MAX_SLICES = 500  # a backfill's slices grow beyond --slice rather than number more

COLUMNS = [
    output.Column("detector", "DETECTOR"),
    output.Column("status", "STATUS"),
    output.Column("events_opened", "NEW", "int"),
    output.Column("events_updated", "UPDATED", "int"),
    output.Column("events_resolved", "RESOLVED", "int"),
    output.Column("duration", "DURATION", "duration"),
    output.Column("error", "ERROR", flex=True),
]


def run(
    ctx: typer.Context,
    detectors: Optional[List[str]] = typer.Argument(None, metavar="[DETECTOR]...",
                                                    help="Detectors to run (default: every enabled one)."),
    since: Optional[str] = typer.Option(None, "--since", help="Re-examine rows this far back (30m, 2h, 7d) or "
                                        "since an ISO 8601 time: a backfill or rescan; events are not duplicated."),
    slice_: str = typer.Option("1d", "--slice", metavar="DURATION",
                               help="With --since: finding detectors examine the window in slices this long "
                                    "(oldest first; at most 500 of them), each in its own transaction and "
                                    "timeout, with progress."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Run detectors now, each in its own transaction with its `timeout` parameter as statement_timeout,
    and print per detector: new, updated and resolved events, duration, status. A backfill (--since
    longer than --slice) runs each finding detector slice by slice, so a month of rows finishes within
    the timeout; Ctrl-C keeps the slices done, and running it again adds no event twice.

    Example: monitorctl run failed_debit duplicate_scan --since 7d
    """
    since_iv, since_ts = parse_since(since)
    slice_iv, _ = parse_since(slice_, "--slice")
    if slice_iv is None or slice_iv < dt.timedelta(minutes=1):
        raise UsageError(f"--slice: {slice_!r} must be a duration of at least a minute, such as 6h or 1d")
    with installed_connection(ctx, autocommit=False) as conn:
        conn.row_factory = dict_row
        known = {r["name"]: r for r in conn.execute(query("run_targets")).fetchall()}
        conn.commit()
        names = detectors or [n for n, r in known.items() if r["enabled"]]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"unknown detector {unknown[0]!r} (known: {', '.join(known)})")
        rows = []
        for i, name in enumerate(names, 1):
            now = conn.execute("select now()").fetchone()["now"]
            conn.commit()
            start = since_ts or (now - since_iv if since_iv else None)
            slices = [(start, None)]
            if start is not None and known[name]["kind"] == "finding" and now - start > slice_iv:
                step = max(slice_iv, (now - start) / MAX_SLICES)  # a window of years: longer slices
                bounds = [start + k * step for k in range(math.ceil((now - start) / step))]
                slices = list(zip(bounds, bounds[1:] + [None]))  # the last one runs to now
            try:
                rows.append(run_slices(conn, name, known[name]["timeout_ms"], slices, f"[{i}/{len(names)}] {name}"))
            except KeyboardInterrupt:
                conn.rollback()
                say(f"interrupted in {name}: the detectors and slices before it are done; run the same command "
                    "again to finish (what was done is examined again, no event is added twice)")
                raise typer.Exit(130)
    output.render(rows, COLUMNS, fmt.value, json_keys=[
        "detector", "status", "events_opened", "events_updated", "events_resolved", "rows_examined",
        "started_at", "finished_at", "duration", "since", "error", "slices"])
    failed = [r["detector"] for r in rows if r["status"] == "error"]
    if failed:
        raise MonitorError(f"{len(failed)} detector(s) failed: {', '.join(failed)} (see `monitorctl status`)")


def run_slices(conn, name: str, timeout_ms: str, slices: list, label: str) -> dict:
    """Run one detector over each slice (since, until) in turn, each committed on its own; the runs'
    results added up. Stops at the first slice that fails."""
    total: dict | None = None
    tty = sys.stderr.isatty()
    step = max(1, len(slices) // 10)
    for k, (since, until) in enumerate(slices, 1):
        if len(slices) > 1 and (tty or k % step == 0 or k == len(slices)):
            where = f"{since:%Y-%m-%d %H:%M} .. {until:%Y-%m-%d %H:%M}" if until else f"{since:%Y-%m-%d %H:%M} .. now"
            message = f"{label}: slice {k}/{len(slices)} ({100 * k // len(slices)}%) {where}"
            if tty:
                sys.stderr.write("\r" + message.ljust(78) + ("\n" if k == len(slices) else ""))
                sys.stderr.flush()
            else:
                say(message)
        elif len(slices) == 1:
            say(f"{label} ...")
        conn.execute("select set_config('statement_timeout', %s, true)", (timeout_ms,))
        try:
            conn.execute("select monitor.run_detector(%s, %s, %s)", (name, since, until))
        except psycopg.errors.InvalidParameterValue as exc:  # a --since in the future, say
            raise UsageError(f"--since: {exc.diag.message_primary}")
        conn.commit()
        row = conn.execute(query("last_run"), (name,)).fetchone()
        conn.commit()
        if total is None:
            total = dict(row) | {"slices": len(slices)}
        else:
            for key in ("events_opened", "events_updated", "events_resolved"):
                total[key] += row[key]
            total["duration"] += row["duration"]
            total.update(status=row["status"], error=row["error"], finished_at=row["finished_at"])
        if row["status"] == "error":
            if len(slices) > 1:
                total["error"] = f"slice {k}/{len(slices)} from {since:%Y-%m-%d %H:%M}: {row['error']}"
            break
    return total


def register(app: typer.Typer) -> None:
    app.command()(run)
