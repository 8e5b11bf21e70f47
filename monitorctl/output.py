"""Rendering what commands print (docs/cli.md): aligned tables, one JSON document, CSV.

Tables are for people: severities coloured when stdout is a terminal (never with NO_COLOR),
amounts with thousands separators, times as relative ages. JSON and CSV are for programs:
timestamps in ISO 8601, amounts as strings (no binary floating point for money), evidence as JSON.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

SEVERITY_STYLE = {
    "critical": "\x1b[1;31m",  # bold red
    "high": "\x1b[31m",  # red
    "medium": "\x1b[33m",  # yellow
    "low": "\x1b[36m",  # cyan
}
STATUS_STYLE = {"open": "\x1b[1m", "acknowledged": "", "resolved": "\x1b[2m"}
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Column:
    """One column of a table: the row key, its header, and how to show a value."""

    key: str
    header: str
    kind: str = "text"  # text | age | time | amount | severity | status | int | json | duration
    flex: bool = False  # this column is shortened first when the table is wider than the terminal

    @property
    def right(self) -> bool:
        return self.kind in ("amount", "int", "duration")


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("MONITOR_COLOR") in ("always", "1", "yes"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


# -- values --------------------------------------------------------------------------------------

def jsonable(value):
    """A value as JSON shows it: ISO 8601 times, amounts as strings, durations in seconds."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(obj, indent: int | None = 2) -> str:
    """One JSON document (or, with indent=None, one JSON Lines line)."""
    separators = None if indent else (",", ":")
    return json.dumps(jsonable(obj), indent=indent, ensure_ascii=False, separators=separators)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def age(ts: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'just now', '42s ago', '5m ago', '3h ago', '2d ago' (or 'in 5m' for a future time)."""
    if ts is None:
        return ""
    now = now or now_utc()
    seconds = (now - ts).total_seconds()
    future = seconds < 0
    text = span(abs(seconds))
    if text == "0s":
        return "just now"
    return f"in {text}" if future else f"{text} ago"


def span(seconds: float) -> str:
    """A duration in its largest sensible unit: 42s, 5m, 3h, 2d."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m" if hours < 10 and rest >= 60 else f"{hours}h"
    return f"{seconds // 86400}d"


def duration(value) -> str:
    """A run's duration for people: 12 ms, 1.4 s."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def amount(value) -> str:
    """1234.5 -> '1,234.50'; whole cents shown, more precision kept when the value has it."""
    if value is None:
        return ""
    d = Decimal(value)
    exponent = d.normalize().as_tuple().exponent
    places = min(max(2, -exponent if isinstance(exponent, int) else 2), 6)
    return f"{d:,.{places}f}"


def clock(ts: dt.datetime | None) -> str:
    """An absolute time for people, in UTC: 2026-11-22 10:52:25Z."""
    if ts is None:
        return ""
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


# control characters text from the database may carry (a note, an id, a server message): shown escaped,
# so that nothing printed can move the cursor, retitle the terminal or break a line
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES.update({chr(c): f"\\x{c:02x}" for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)] if chr(c) not in _ESCAPES})
_ESCAPES.update({"\u2028": "\\u2028", "\u2029": "\\u2029"})  # line breaks to str.splitlines()
_CONTROL = str.maketrans(_ESCAPES)


def printable(text: str) -> str:
    """Text with its control characters escaped (a newline as \\n, ESC as \\x1b)."""
    return text.translate(_CONTROL)


def cell(value, kind: str, now: dt.datetime | None = None) -> str:
    if value is None:
        return ""
    if kind == "age":
        return age(value, now)
    if kind == "time":
        return clock(value)
    if kind == "amount":
        return amount(value)
    if kind == "duration":
        return duration(value)
    if kind == "json":
        return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(" ".join(str(value).split()))  # one line per row, whatever the text holds


def paint(text: str, kind: str, value, colour: bool) -> str:
    if not colour or value is None:
        return text
    style = SEVERITY_STYLE.get(value) if kind == "severity" else STATUS_STYLE.get(value) if kind == "status" \
        else None
    return f"{style}{text}{RESET}" if style else text


# -- whole outputs --------------------------------------------------------------------------------

def table(rows: list[dict], columns: list[Column], colour: bool = False, width: int | None = None,
          now: dt.datetime | None = None) -> str:
    """Aligned columns with a header; the flex column is cut to fit ``width`` when given."""
    return "\n".join(table_lines(rows, rows, columns, colour, width, now))


def table_lines(layout: list[dict], rows: Iterable[dict], columns: list[Column], colour: bool = False,
                width: int | None = None, now: dt.datetime | None = None) -> Iterator[str]:
    """The lines of a table of ``rows`` whose column widths come from the rows in ``layout``; a
    longer cell of a later row is cut to its column's width."""
    now = now or now_utc()
    widths = [max([len(c.header)] + [len(cell(r.get(c.key), c.kind, now)) for r in layout]) for c in columns]
    if width:
        total = sum(widths) + 2 * (len(widths) - 1)
        for i, c in enumerate(columns):
            if c.flex and total > width:
                widths[i] = max(len(c.header), widths[i] - (total - width), 12)
                total = sum(widths) + 2 * (len(widths) - 1)
    yield _line([c.header for c in columns], columns, widths)
    for r in rows:
        texts = [cell(r.get(c.key), c.kind, now) for c in columns]
        shown = [text if len(text) <= widths[i] else text[: widths[i] - 1] + "…" for i, text in enumerate(texts)]
        yield _line(shown, columns, widths, r, colour)


def _line(texts, columns, widths, row=None, colour=False) -> str:
    parts = []
    for i, (text, c) in enumerate(zip(texts, columns)):
        last = i == len(columns) - 1
        padded = text.rjust(widths[i]) if c.right else (text if last else text.ljust(widths[i]))
        parts.append(paint(padded, c.kind, row.get(c.key), colour) if row is not None else padded)
    return "  ".join(parts).rstrip()


def csv_text(rows: list[dict], keys: list[str]) -> str:
    """A header row, then one row per record; times ISO 8601, JSON values as compact JSON."""
    return "\n".join([csv_row({k: k for k in keys}, keys)] + [csv_row(r, keys) for r in rows])


def csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(jsonable(value), separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    v = jsonable(value)
    return str(v)


def terminal_width(stream=None) -> int | None:
    """The terminal's width when stdout is one, else None (no cutting when piped)."""
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return shutil.get_terminal_size((120, 24)).columns


def emit(text: str) -> None:
    """Write data to stdout and flush (a pipe reader sees it at once)."""
    _write(text + "\n")


def _write(text: str) -> None:
    """Write to stdout and flush. A reader that went away (`monitorctl events | head -3`) ends the
    command quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail too
        raise SystemExit(0)


TABLE_LAYOUT_ROWS = 1000  # a streamed table takes its column widths from its first rows
CHUNK = 500  # lines written to stdout at a time


def render(rows: Iterable[dict], columns: list[Column], fmt: str, json_keys: list[str] | None = None,
           empty: str | None = None) -> int:
    """Print ``rows`` in ``fmt``: table (``columns``), json or csv (``json_keys``, every field by default).

    ``rows`` may be any iterable, a server-side cursor's rows say: they are written as they come, so
    memory stays flat whatever their number. A table takes its layout from its first
    TABLE_LAYOUT_ROWS rows (all of them, in the usual case). Returns the number of rows."""
    it = iter(rows)
    head = list(itertools.islice(it, TABLE_LAYOUT_ROWS))
    keys = json_keys or (list(head[0].keys()) if head else [c.key for c in columns])
    count = 0

    def counted(source):
        nonlocal count
        for r in source:
            count += 1
            yield r

    everything = counted(itertools.chain(head, it))
    if fmt == "json":
        emit_lines(json_array({k: r.get(k) for k in keys} for r in everything))
    elif fmt == "csv":
        emit_lines(itertools.chain([csv_text([], keys)], (csv_row(r, keys) for r in everything)))
    elif not head and empty is not None:
        print(empty, file=sys.stderr)
    else:
        emit_lines(table_lines(head, everything, columns, colour=use_colour(), width=terminal_width()))
    return count


def json_array(objects: Iterable) -> Iterator[str]:
    """The lines of ``dumps(list(objects))``, produced one object at a time."""
    previous = None
    for obj in objects:
        text = "\n".join("  " + line for line in dumps(obj).split("\n"))
        yield "[" if previous is None else previous + ","
        previous = text
    if previous is None:
        yield "[]"
    else:
        yield previous
        yield "]"


def csv_row(row: dict, keys: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([csv_value(row.get(k)) for k in keys])
    return buf.getvalue()


def emit_lines(lines: Iterable[str]) -> None:
    """Write lines to stdout, CHUNK at a time."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= CHUNK:
            _write("\n".join(batch) + "\n")
            batch = []
    if batch:
        _write("\n".join(batch) + "\n")


def document(doc, fmt: str, text, rows: list[dict] | None = None, keys: list[str] | None = None) -> None:
    """Print one result that is not a list of rows: ``doc`` as one JSON document, ``rows`` (``keys``)
    as CSV, or ``text()`` for people."""
    if fmt == "json":
        emit(dumps(doc))
    elif fmt == "csv":
        rows = [doc] if rows is None else rows
        emit(csv_text(rows, keys or (list(rows[0]) if rows else [])))
    else:
        emit(text())
