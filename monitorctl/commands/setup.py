"""install, uninstall, migrate status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from .. import install as inst, mapping
from ..db import connect
from .common import FORMAT_OPTION, Format, dsn_of, say


def install(
    ctx: typer.Context,
    with_ledger: bool = typer.Option(False, "--with-ledger", help="Also create the reference ledger schema "
                                     "(ledger.accounts, ledger.transactions, ledger.scans) and monitor it."),
    config: Optional[Path] = typer.Option(None, "--config", envvar="MONITOR_CONFIG",
                                          help="Mapping file (TOML) onto your own tables, and detector parameters."),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Do not create or update pg_cron jobs."),
) -> None:
    """Apply pending migrations, (re)create detector functions and source views, register detectors
    and pg_cron jobs. Idempotent: running it again after an upgrade is the upgrade.

    Example: monitorctl install --with-ledger
    """
    cfg = mapping.load(config) if config else None
    report = inst.install(dsn_of(ctx), with_ledger=with_ledger, config=cfg, do_schedule=not no_schedule, say=say)
    if report.scheduling:
        s = report.scheduling
        say(f"pg_cron {s.version} in database {s.cron_database}: {len(s.created)} jobs created, "
            f"{len(s.updated)} updated, {len(s.removed)} removed, {len(s.unchanged)} unchanged")
    else:
        say(f"scheduling is off: {report.scheduling_off}")
    say("install complete")


def uninstall(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do it without asking."),
) -> None:
    """Remove the monitor schema, its migration records and its pg_cron jobs. The ledger and your
    tables are never touched; a later install starts clean.

    Example: monitorctl uninstall --yes
    """
    dsn = dsn_of(ctx)
    with connect(dsn) as conn:
        summary = inst.uninstall_summary(conn)
    say(f"this drops schema monitor with {summary['events']} events, {summary['alert_history']} history rows "
        f"and {summary['detectors']} detectors, and removes its pg_cron jobs")
    if not yes:
        if not os.isatty(0):
            raise typer.BadParameter("refusing to uninstall without --yes when not on a terminal", param_hint="--yes")
        typer.confirm("Uninstall?", abort=True, err=True)
    inst.uninstall(dsn, say=say)


migrate = typer.Typer(help="Migration state.", no_args_is_help=True, rich_markup_mode=None)


@migrate.command("status")
def migrate_status(
    ctx: typer.Context,
    show_sql: bool = typer.Option(False, "--show-sql", help="Print each migration's SQL."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Applied and pending migrations (monitor's, and the reference ledger's).

    Example: monitorctl migrate status --show-sql
    """
    rows = inst.migration_status(dsn_of(ctx.parent), show_sql=show_sql)
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if fmt is Format.csv:
        typer.echo("set,id,applied")
        for r in rows:
            typer.echo(f"{r['set']},{r['id']},{str(r['applied']).lower()}")
        return
    for r in rows:
        typer.echo(f"{'applied' if r['applied'] else 'pending':8} {r['set']:8} {r['id']}")
        if show_sql:
            typer.echo("\n".join("    " + line for line in r["sql"].rstrip().splitlines()) + "\n")


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(uninstall)
    app.add_typer(migrate, name="migrate")
