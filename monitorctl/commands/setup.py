"""install, uninstall, migrate status."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .. import output
from .common import FORMAT_OPTION, Format, monitor_of, say



def install(
    ctx: typer.Context,
    with_ledger: bool = typer.Option(False, "--with-ledger", help="Also create the reference ledger schema "
                                     "(ledger.accounts, ledger.transactions, ledger.scans) and monitor it."),
    config: Optional[Path] = typer.Option(None, "--config", envvar="MONITOR_CONFIG",
                                          help="Mapping file (TOML) onto your own tables, and detector parameters."),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Do not create or update pg_cron jobs."),
    distributed: bool = typer.Option(False, "--distributed", help="With --with-ledger, on a Citus coordinator: "
                                     "distribute the reference ledger by account_id, its tables co-located "
                                     "(docs/scaling.md)."),
) -> None:
    """Apply pending migrations, (re)create detector functions and source views, register detectors
    and pg_cron jobs. Idempotent: running it again after an upgrade is the upgrade.

    Example: monitorctl install --with-ledger
    """
    with monitor_of(ctx) as monitor:
        report = monitor.install(with_ledger=with_ledger, config=config, schedule_jobs=not no_schedule,
                                 distributed=distributed)
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
    with monitor_of(ctx) as monitor:
        summary = monitor.uninstall_summary()
        say(f"this drops schema monitor with {summary['events']} events, {summary['alert_history']} history rows "
            f"and {summary['detectors']} detectors, and removes its pg_cron jobs")
        if not yes:
            if not os.isatty(0):
                raise typer.BadParameter("refusing to uninstall without --yes when not on a terminal",
                                         param_hint="--yes")
            typer.confirm("Uninstall?", abort=True, err=True)
        monitor.uninstall()


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
    with monitor_of(ctx) as monitor:
        rows = monitor.migrations(show_sql=show_sql)
    output.document(rows, fmt.value, lambda: migrations_text(rows, show_sql), rows, ["set", "id", "applied"])


def migrations_text(rows: list[dict], show_sql: bool) -> str:
    lines = []
    for r in rows:
        lines.append(f"{'applied' if r['applied'] else 'pending':8} {r['set']:8} {r['id']}")
        if show_sql:
            lines.append("\n".join("    " + line for line in r["sql"].rstrip().splitlines()) + "\n")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(uninstall)
    app.add_typer(migrate, name="migrate")
