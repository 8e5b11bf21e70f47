"""The `monitorctl` command line (docs/cli.md). Commands live in monitorctl/commands/."""

from __future__ import annotations

import sys
from typing import Optional

import psycopg
import typer
from typer.core import TyperGroup

from . import __version__, output, resources
from .errors import MonitorError

try:  # typer 0.2x vendors click as typer._click; earlier versions use click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException

    try:
        from click.exceptions import NoArgsIsHelpError
    except ImportError:  # click before 8.2 prints the help itself, without an exception
        NoArgsIsHelpError = ()


def one_line(message: str) -> str:
    """A message as one line: control characters shown escaped (a newline as \\n), not cut off."""
    return output.printable(message.rstrip())


def fail(message: str, code: int):
    """Print `monitorctl: MESSAGE` as one line on stderr and exit with ``code``."""
    typer.echo(f"monitorctl: {one_line(message)}", err=True)
    raise typer.Exit(code)


def usage_failure(exc: ClickException):
    """Click's usage errors (Usage:, Try ..., Error:) as one line, naming the valid range of a number
    and the command's --help; exit 2."""
    message, notes = exc.format_message(), []
    param = getattr(exc, "param", None)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None or high is not None:
        notes.append(f"valid: {low} to {high}" if low is not None and high is not None else
                     f"valid: at least {low}" if low is not None else f"valid: at most {high}")
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        names = ctx.help_option_names
        notes.append(f"see '{ctx.command_path} {'--help' if '--help' in names else names[0]}'")
    fail(message + (f" ({'; '.join(notes)})" if notes else ""), exc.exit_code)


class MonitorGroup(TyperGroup):
    """Turns MonitorError, database errors and Click's usage errors into one line and the exit code
    README.md names.

    Click reports a usage error (an unknown option, a bad value, a missing argument) in three lines
    from typer's ``_main`` (``exc.show()``); parsing happens in ``make_context`` (this command's options)
    and in ``invoke`` (a sub-command's), so both turn it into one line here first. A command group run
    without arguments still prints its help (NoArgsIsHelpError)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except ClickException as exc:
            usage_failure(exc)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except ClickException as exc:
            usage_failure(exc)
        except MonitorError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            fail(str(exc), exc.exit_code)
        except psycopg.OperationalError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            fail(f"lost the database connection: {' '.join(str(exc).split())}", 3)
        except psycopg.Error as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            msg = exc.diag.message_primary if getattr(exc, "diag", None) and exc.diag.message_primary else str(exc)
            fail(msg or type(exc).__name__, 1)


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
