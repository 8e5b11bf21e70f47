"""The `monitorctl` command line (CONTRACT §6). Commands live in monitorctl/commands/."""

from __future__ import annotations

import sys
from typing import Optional

import psycopg
import typer
from typer.core import TyperGroup

from . import __version__, resources
from .errors import MonitorError


class MonitorGroup(TyperGroup):
    """Turns MonitorError and database errors into one line and the contract's exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"monitorctl: {exc}", err=True)
            raise typer.Exit(exc.exit_code)
        except psycopg.OperationalError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"monitorctl: lost the database connection: {' '.join(str(exc).split())}", err=True)
            raise typer.Exit(3)
        except psycopg.Error as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            msg = exc.diag.message_primary if getattr(exc, "diag", None) and exc.diag.message_primary else str(exc)
            typer.echo(f"monitorctl: {msg.splitlines()[0] if msg else type(exc).__name__}", err=True)
            raise typer.Exit(1)


app = typer.Typer(
    cls=MonitorGroup,
    help="PostgreSQL-native financial-integrity monitor: detectors in SQL, scheduled by pg_cron.\n\n"
         "Example: monitorctl --dsn postgresql://localhost/payments install --with-ledger",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"monitorctl {__version__} (schema {resources.schema_version()})")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    dsn: Optional[str] = typer.Option(
        None, "--dsn", envvar="MONITOR_DSN",
        help="Database to monitor: a URL (postgresql://...) or a keyword string (host=... dbname=...). "
             "Falls back to DATABASE_URL, then libpq's PG* variables."),
    debug: bool = typer.Option(False, "--debug", envvar="MONITOR_DEBUG", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the package version and the schema version it installs."),
) -> None:
    ctx.obj = {"dsn": dsn, "debug": debug}


from .commands import register  # noqa: E402  (commands attach themselves to app)

register(app)


def main() -> None:
    sys.exit(app(prog_name="monitorctl") or 0)
