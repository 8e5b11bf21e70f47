"""How the CLI shows data (monitorctl/output.py) and reads its arguments, without a database."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from monitorctl import model, output
from monitorctl.commands.detectors import parse_assignments, parse_value
from monitorctl.commands.events import parse_since
from monitorctl.errors import UsageError
from monitorctl.output import Column

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("value, text", [
    (Decimal("1234.5"), "1,234.50"), (Decimal("-7.25"), "-7.25"), (Decimal("12"), "12.00"),
    (Decimal("0.125"), "0.125"), (Decimal("1E+3"), "1,000.00"), (None, ""), (Decimal("-0.5"), "-0.50"),
])
def test_amounts_are_readable_and_exact(value, text):
    assert output.amount(value) == text


@pytest.mark.parametrize("seconds, text", [
    (0, "just now"), (42, "42s ago"), (300, "5m ago"), (3 * 3600, "3h ago"), (3 * 3600 + 1800, "3h30m ago"),
    (12 * 3600, "12h ago"), (3 * 86400, "3d ago"), (-300, "in 5m"),
])
def test_relative_ages(seconds, text):
    assert output.age(NOW - dt.timedelta(seconds=seconds), NOW) == text


def test_json_has_iso_times_and_amounts_as_strings():
    doc = json.loads(output.dumps({"amount": Decimal("1.10"), "at": NOW, "took": dt.timedelta(milliseconds=1500),
                                   "nested": [{"a": Decimal("2")}]}))
    assert doc == {"amount": "1.10", "at": "2026-05-01T12:00:00+00:00", "took": 1.5, "nested": [{"a": "2"}]}
    assert "\n" not in output.dumps({"a": 1}, indent=None)  # a JSON Lines line


def test_csv_has_a_header_and_quotes_what_needs_it():
    text = output.csv_text([{"id": 1, "note": 'said "hi", left', "evidence": {"a": 1}, "ok": True, "n": None}],
                           ["id", "note", "evidence", "ok", "n"])
    assert text.splitlines() == ["id,note,evidence,ok,n", '1,"said ""hi"", left","{""a"":1}",true,']


def test_table_aligns_colours_and_cuts_the_flexible_column():
    cols = [Column("id", "ID", "int"), Column("severity", "SEVERITY", "severity"),
            Column("amount", "AMOUNT", "amount"), Column("summary", "SUMMARY", flex=True)]
    rows = [{"id": 7, "severity": "critical", "amount": Decimal("1234.5"), "summary": "x" * 80},
            {"id": 12, "severity": "low", "amount": None, "summary": "short\nline"}]
    plain = output.table(rows, cols, width=60, now=NOW).splitlines()
    assert plain[0].split() == ["ID", "SEVERITY", "AMOUNT", "SUMMARY"]
    assert plain[1].startswith(" 7  critical  1,234.50  ") and plain[1].endswith("…") and len(plain[1]) == 60
    assert plain[2].startswith("12  low") and plain[2].endswith("short line")  # one line per row
    coloured = output.table(rows, cols, colour=True, now=NOW).splitlines()
    assert "\x1b[1;31mcritical\x1b[0m" in coloured[1] and "\x1b[36mlow     \x1b[0m" in coloured[2]


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("MONITOR_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert output.use_colour(Tty()) is True
    assert output.use_colour(object()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert output.use_colour(Tty()) is False


def test_severity_order():
    assert model.at_least("critical") == ["critical"]
    assert model.at_least("medium") == ["critical", "high", "medium"]


@pytest.mark.parametrize("text, expected", [
    ("2h", dt.timedelta(hours=2)), ("30m", dt.timedelta(minutes=30)), ("7d", dt.timedelta(days=7)),
    ("90 seconds", dt.timedelta(seconds=90)), ("1w", dt.timedelta(weeks=1)), ("15 MIN", dt.timedelta(minutes=15)),
])
def test_since_durations(text, expected):
    assert parse_since(text) == (expected, None)


def test_since_times_and_refusals():
    assert parse_since("2026-05-01T10:00:00Z") == (None, dt.datetime(2026, 5, 1, 10, tzinfo=dt.timezone.utc))
    assert parse_since("2026-05-01 10:00")[1].tzinfo is not None  # a naive time is UTC
    for bad in ("2 fortnights", "h2", "", "-3h"):
        with pytest.raises(UsageError, match="30m"):
            parse_since(bad)


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.05", 0.05), ("-1", -1), ("1e3", 1000.0), ("3 seconds", "3 seconds"), ("  20 ", 20),
    ("true", True), ("false", False), ('["world", "fees"]', ["world", "fees"]), ("5s", "5s"),
])
def test_parameter_values_numbers_as_json_numbers(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_assignments():
    assert parse_assignments(["window=3 seconds", "min_count=3", "schedule=*/5 * * * *", "severity=high"]) == \
        ({"window": "3 seconds", "min_count": 3}, {"schedule": "*/5 * * * *", "severity": "high"})
    assert parse_assignments(["note=a=b"]) == ({"note": "a=b"}, {})
    with pytest.raises(UsageError, match="key=value"):
        parse_assignments(["window"])
    with pytest.raises(UsageError, match="critical, high, medium, low"):
        parse_assignments(["severity=urgent"])
