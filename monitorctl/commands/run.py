"""monitorctl run: detectors now, synchronously, each in its own transaction with its timeout."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional

import psycopg
import typer
from psycopg.rows import dict_row

from .. import output
from ..db import query
from ..errors import MonitorError, UsageError
from .common import FORMAT_OPTION, Format, installed_connection, say
from .events import parse_since

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
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Run detectors now, each in its own transaction with its `timeout` parameter as statement_timeout,
    and print per detector: new, updated and resolved events, duration, status.

    Example: monitorctl run failed_debit duplicate_scan --since 7d
    """
    since_iv, since_ts = parse_since(since)
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
            say(f"[{i}/{len(names)}] {name} ...")
            start = since_ts or (conn.execute("select now()").fetchone()["now"] - since_iv if since_iv else None)
            conn.execute("select set_config('statement_timeout', %s, true)", (known[name]["timeout_ms"],))
            try:
                conn.execute("select monitor.run_detector(%s, %s)", (name, start))
            except psycopg.errors.InvalidParameterValue as exc:  # a --since in the future, say
                raise UsageError(f"--since: {exc.diag.message_primary}")
            conn.commit()
            row = conn.execute(query("last_run"), (name,)).fetchone()
            conn.commit()
            rows.append(row)
    output.render(rows, COLUMNS, fmt.value, json_keys=[
        "detector", "status", "events_opened", "events_updated", "events_resolved", "rows_examined",
        "started_at", "finished_at", "duration", "since", "error"])
    failed = [r["detector"] for r in rows if r["status"] == "error"]
    if failed:
        raise MonitorError(f"{len(failed)} detector(s) failed: {', '.join(failed)} (see `monitorctl status`)")


def register(app: typer.Typer) -> None:
    app.command()(run)
