"""detectors list|enable|disable|set|add|remove: inspect and tune detectors (docs/detectors.md, docs/cli.md).

Every change is made by monitorctl.api (monitor.configure_detector, monitor.register_detector in the
database) and pg_cron's jobs are brought in line at once, in the same transaction (a disabled detector is unscheduled, a new schedule
rescheduled). The registry keeps the change, so a later `monitorctl install` keeps it too.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import List, Optional

import typer

from .. import output
from ..api import Change
from ..errors import UsageError
from ..model import SEVERITIES, Kind, Severity, check_severity
from ..output import Column
from .common import FORMAT_OPTION, Format, monitor_of, say

NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
SETTINGS = ("schedule", "severity")
COMMON_PARAMS = ("timeout", "lock_timeout", "late_window", "first_lookback", "exclude")  # monitor.common_params

app = typer.Typer(help="Inspect and tune detectors: list, enable, disable, set, add, remove.\n\n"
                       "Example: monitorctl detectors set duplicate_scan window='3 seconds'",
                  no_args_is_help=True, rich_markup_mode=None)


LIST_COLUMNS = [
    Column("name", "NAME"),
    Column("enabled", "ENABLED"),
    Column("severity", "SEVERITY", "severity"),
    Column("kind", "KIND"),
    Column("schedule", "SCHEDULE"),
    Column("shown_params", "PARAMETERS", flex=True),
]
LIST_KEYS = ["name", "enabled", "severity", "kind", "schedule", "params", "param_defaults", "description",
             "function", "builtin", "enabled_at", "updated_at"]


def parse_value(text: str, key: str = "value"):
    """A number as a JSON number ('20', '0.05'), true or false as a boolean, a JSON list as a list
    ('["world", "fees"]'), anything else as a string ('3 seconds').

    A number beyond what a JSON number holds (a double, about 1.8e308: '1e400' would be infinity) is
    refused, naming ``key``."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{key}: {text!r} is not a JSON list such as [\"world\", \"fees\"] ({exc})")
    if NUMBER.match(text):
        try:
            d = Decimal(text)
            finite = math.isfinite(float(d))
        except ArithmeticError:  # an exponent beyond what Decimal holds: '1e99999999999999999999'
            finite = False
        if not finite:
            shown = text if len(text) <= 24 else text[:20] + "…"
            raise UsageError(f"{key}: {shown!r} is too large a number (a number runs from about -1.8e308 to "
                             "1.8e308)")
        return int(d) if d == d.to_integral_value() and "." not in text and "e" not in text.lower() else float(d)
    return text


def parse_assignments(items: list[str], allow_settings: bool = True) -> tuple[dict, dict]:
    """['window=3 seconds', 'schedule=*/5 * * * *'] -> ({'window': '3 seconds'}, {'schedule': '*/5 * * * *'})."""
    params, settings = {}, {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"expected key=value (e.g. window='3 seconds' or schedule='*/5 * * * *'), not {item!r}")
        if allow_settings and key in SETTINGS:
            settings[key] = value.strip()
        else:
            params[key] = parse_value(value, key)
    if "severity" in settings:
        check_severity(settings["severity"])
    return params, settings


def shown_params(row: dict) -> str:
    """The parameters worth a glance: a detector's own, and common ones changed from their default."""
    parts = []
    for key, value in sorted(row["params"].items()):
        if key in COMMON_PARAMS and row["param_defaults"].get(key) == value:
            continue
        parts.append(f"{key}={value}")
    return " ".join(parts)


def said(change: Change) -> None:
    """Say what a change did to pg_cron's jobs (stderr)."""
    report = change.scheduling
    if report is None:
        say(f"scheduling is off: {change.scheduling_off}")
        return
    changes = [("scheduled", report.created), ("rescheduled", report.updated), ("unscheduled", report.removed)]
    done = "; ".join(f"{verb} {', '.join(names)}" for verb, names in changes if names)
    say(f"pg_cron ({report.cron_database}): {done or 'jobs already in line'}")


@app.command("list")
def list_(ctx: typer.Context, fmt: Format = FORMAT_OPTION) -> None:
    """Every detector: enabled, severity, kind, schedule and parameters (table: a detector's own
    parameters and any changed from the default; json/csv: all of them, with defaults and description).

    Example: monitorctl detectors list --format json
    """
    with monitor_of(ctx) as monitor:
        rows = monitor.detectors()
    for r in rows:
        r["shown_params"] = shown_params(r)
    output.render(rows, LIST_COLUMNS, fmt.value, LIST_KEYS)


@app.command()
def enable(ctx: typer.Context,
           names: List[str] = typer.Argument(..., metavar="NAME...", help="Detector names.")) -> None:
    """Enable detectors: they run on their schedule again (pg_cron jobs are created at once).

    Example: monitorctl detectors enable volume_anomaly
    """
    with monitor_of(ctx) as monitor:
        said(monitor.enable(names))
    say(f"enabled {', '.join(names)}")


@app.command()
def disable(ctx: typer.Context,
            names: List[str] = typer.Argument(..., metavar="NAME...", help="Detector names.")) -> None:
    """Disable detectors: their pg_cron jobs are removed at once, and `monitorctl run` without names
    skips them. Their open events stay (resolve them, or let a re-enabled condition resolve itself).

    Example: monitorctl detectors disable failure_rate
    """
    with monitor_of(ctx) as monitor:
        said(monitor.disable(names))
    say(f"disabled {', '.join(names)}")


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Detector name."),
    assignments: List[str] = typer.Argument(
        ..., metavar="KEY=VALUE...",
        help="Parameters (intervals as PostgreSQL interval text, numbers as numbers), or schedule=CRON, "
             f"severity={'|'.join(SEVERITIES)}."),
) -> None:
    """Change a detector's parameters, schedule or severity. Values are validated: an unknown key or a
    value of the wrong kind changes nothing and exits 2. A new schedule takes effect in pg_cron at once;
    parameters at the next run. Changes survive `monitorctl install`.

    Example: monitorctl detectors set duplicate_scan window='3 seconds' min_count=3 schedule='*/2 * * * *'
    """
    params, settings = parse_assignments(assignments)
    with monitor_of(ctx) as monitor:
        change = monitor.configure(name, params, settings.get("schedule"), settings.get("severity"))
    said(change)
    result = change.detectors[0]
    changed = [f"{k}={result['params'][k]}" for k in params] + [f"{k}={result[k]}" for k in settings]
    say(f"{name}: {' '.join(changed)}")


@app.command()
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Detector name: lower-case letters, digits and _."),
    function: str = typer.Option(..., "--function", metavar="SCHEMA.FN",
                                 help="FN(params jsonb, since timestamptz) RETURNS SETOF monitor.finding."),
    severity: Severity = typer.Option(..., "--severity", case_sensitive=False, help="Severity of its events."),
    kind: Kind = typer.Option(..., "--kind", case_sensitive=False,
                              help="finding (stays open until resolved) or condition (resolves by itself)."),
    schedule_: str = typer.Option("* * * * *", "--schedule", metavar="CRON", help="pg_cron schedule."),
    param: Optional[List[str]] = typer.Option(None, "--param", metavar="KEY=VALUE",
                                              help="A parameter with its default value; repeatable."),
    description: str = typer.Option("", "--description", help="One line saying what it finds."),
) -> None:
    """Register a custom detector (monitor.register_detector) and schedule it in pg_cron. It is then
    run, deduplicated and pruned like a built-in one; running `add` again re-registers it.

    Example: monitorctl detectors add big_refund --function acme.detect_big_refund --severity high
    --kind finding --param limit=500
    """
    params, _ = parse_assignments(param or [], allow_settings=False)
    with monitor_of(ctx) as monitor:
        said(monitor.add(name, function, severity.value, kind.value, schedule_, params, description))
    say(f"registered detector {name} ({function}, {severity.value}, {kind.value}, {schedule_})")


@app.command()
def remove(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", help="A custom detector.")) -> None:
    """Remove a custom detector and its pg_cron job (its events stay until pruned). Built-in detectors
    cannot be removed: disable them.

    Example: monitorctl detectors remove big_refund
    """
    with monitor_of(ctx) as monitor:
        said(monitor.remove(name))
    say(f"removed detector {name}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="detectors")

