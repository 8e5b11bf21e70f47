"""Every operator command exits 3 with one line naming `monitorctl install` on an uninstalled database,
and naming the server on an unreachable one (docs/cli.md); in-process."""

import os
import socket

import psycopg
import pytest

from tests.acceptance.support import invoke, run_cli

COMMANDS = [
    ["events"], ["events", "--follow"], ["show", "1"], ["ack", "1"], ["resolve", "1", "--note", "x"],
    ["status"], ["status", "--health"], ["status", "--format", "json"], ["detectors", "list"],
    ["detectors", "set", "failed_debit", "timeout=5s"], ["detectors", "enable", "failed_debit"],
    ["detectors", "disable", "failed_debit"], ["detectors", "remove", "x"],
    ["detectors", "add", "x", "--function", "a.b", "--severity", "low", "--kind", "finding"],
    ["prune"], ["prune", "--dry-run"],
]


def test_uninstalled(fresh_db):
    for args in COMMANDS:
        r = invoke(*args, dsn=fresh_db)
        assert r.returncode == 3, (args, r.stderr)
        assert r.stdout == "" and r.stderr.count("\n") == 1 and "`monitorctl install`" in r.stderr, args


def test_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for args in COMMANDS:
        r = invoke(*args, dsn=f"host=127.0.0.1 port={port} dbname=payments user=nobody")
        assert r.returncode == 3, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and f"127.0.0.1:{port}/payments" in r.stderr, args


# -- edge cases: exit 2 (a usage error naming the valid values or range) or 1, always one line -----------

def one_line(r, code: int, *words: str) -> str:
    """The run failed with ``code`` and said so in exactly one `monitorctl: ...` line, no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("monitorctl: ") and r.stderr.endswith("\n"), r.stderr
    assert r.stderr.count("\n") == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)
    return r.stderr


def test_durations_are_bounded_to_100_years(db):
    for args in (["events", "--since", "99999999999d"], ["events", "--since", "999999999d"],
                 ["events", "--since", "36501d"], ["events", "--since", "9" * 5000 + "s"],
                 ["run", "failed_debit", "--since", "999999999d"], ["run", "X", "--since", "999999999d"]):
        one_line(invoke(*args, dsn=db), 2, "--since", "36500d")
    # a separate process: what a shell sees (no traceback on stderr)
    one_line(run_cli("events", "--since", "99999999999d", dsn=db), 2, "--since", "36500d")
    assert invoke("events", "--since", "36500d", dsn=db).returncode == 0
    assert invoke("run", "failed_debit", "--since", "36500d", dsn=db).returncode == 0


def test_times_far_in_the_past_or_future(db):
    for since in ("0001-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59Z"):
        r = invoke("events", "--since", since, dsn=db)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (since, r.stderr)
    r = invoke("run", "failed_debit", "--since", "0001-01-01", dsn=db)
    assert r.returncode == 0, r.stderr
    # beyond what a time holds once in UTC
    for since in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00"):
        one_line(invoke("events", "--since", since, dsn=db), 2, "--since", "out of range")
        one_line(invoke("run", "failed_debit", "--since", since, dsn=db), 2, "--since", "out of range")
    one_line(invoke("events", "--since", "99999-01-01", dsn=db), 2, "--since", "ISO 8601")


def test_config_files_that_are_not_toml_text(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[sources.accounts]\nrelation = "public.caf\xe9"\n'.encode("latin-1"))
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b"\x00\x01\x02")
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    regular = tmp_path / "regular"
    regular.write_text("")
    cases = [(binary, "not UTF-8"), (latin1, "not UTF-8"), (nul, "not valid TOML"), (directory, "a directory"),
             (regular / "monitor.toml", "cannot be read")]
    for path, problem in cases:
        one_line(invoke("install", "--config", str(path)), 2, f"config file {path} ", problem)
        one_line(invoke("install", MONITOR_CONFIG=str(path)), 2, f"config file {path} ", problem)


def test_an_unreadable_config_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "secret.toml"
    path.write_text("[detectors]\n")
    path.chmod(0)
    one_line(invoke("install", "--config", str(path)), 2, f"config file {path} cannot be read", "ermission")


def test_numbers_of_options_are_bounded(db):
    one_line(invoke("events", "--limit", "99999999999999999999", dsn=db), 2, "--limit", "0 to 1000000000")
    one_line(invoke("events", "--limit", "-1", dsn=db), 2, "--limit", "0 to 1000000000")
    assert invoke("events", "--limit", "1000000000", dsn=db).returncode == 0
    for option in ("--events-days", "--history-days"):
        one_line(invoke("prune", "--dry-run", option, "999999999", dsn=db), 2, option, "0 to 36500")
        assert invoke("prune", "--dry-run", option, "36500", dsn=db).returncode == 0
    one_line(invoke("prune", "--dry-run", dsn=db, MONITOR_EVENTS_DAYS="999999999"), 2, "--events-days", "36500")


def test_parameter_numbers_that_are_not_json(db):
    for value in ("1e400", "-1e400", "1e99999999999999999999", "9" * 400):
        one_line(invoke("detectors", "set", "duplicate_scan", f"min_count={value}", dsn=db), 2, "min_count")
    one_line(invoke("detectors", "add", "x", "--function", "a.b", "--severity", "low", "--kind", "finding",
                    "--param", "limit=1e400", dsn=db), 2, "limit")


@pytest.mark.parametrize("args, words", [
    (["--bogus"], ["No such option: --bogus", "'monitorctl --help'"]),
    (["events", "--bogus"], ["--bogus", "'monitorctl events --help'"]),
    (["events", "--status", "x"], ["--status", "'open', 'acknowledged', 'resolved', 'active', 'all'"]),
    (["events", "--limit", "many"], ["--limit", "0 to 1000000000", "'monitorctl events --help'"]),
    (["show"], ["Missing argument 'ID'", "'monitorctl show --help'"]),
    (["show", "one"], ["ID", "'monitorctl show --help'"]),
    (["detectors", "nope"], ["nope", "'monitorctl detectors --help'"]),
    (["detectors", "set"], ["NAME", "'monitorctl detectors set --help'"]),
    (["detectors", "add", "x", "--function", "a.b", "--severity", "urgent", "--kind", "finding"],
     ["--severity", "critical", "'monitorctl detectors add --help'"]),
    (["--dsn", "host=/nowhere"], ["Missing command", "'monitorctl --help'"]),
])
def test_usage_errors_are_one_line(args, words):
    one_line(invoke(*args), 2, *words)


def test_usage_errors_in_a_separate_process():
    one_line(run_cli("events", "--limit", "99999999999999999999"), 2, "--limit", "0 to 1000000000")


def test_help_and_version_are_unchanged():
    r = invoke("--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: monitorctl [OPTIONS] COMMAND") and r.stderr == ""
    r = invoke("events", "--help")
    assert r.returncode == 0 and "--limit" in r.stdout and r.stderr == ""
    r = invoke("--version")
    assert r.returncode == 0 and r.stdout.startswith("monitorctl ") and r.stderr == ""
    for args in ([], ["detectors"]):  # a group without a command prints its help, as before
        r = invoke(*args)
        assert r.returncode == 2 and "Usage: monitorctl" in r.stderr and "Commands:" in r.stderr, args


def test_a_message_with_a_newline_stays_one_line(db):
    err = one_line(invoke("detectors", "set", "failed_debit", "schedule=*\n* * * *", dsn=db), 2, "schedule")
    assert "*\\n* * * *" in err  # shown escaped, not cut at the newline
    err = one_line(invoke("run", "no\r\nsuch\tdetector", dsn=db), 2)
    assert "no\\r\\nsuch\\tdetector" in err


def test_a_database_error_with_a_newline_stays_one_line(monkeypatch, db):
    from monitorctl.api import Monitor

    def fails(self, *args, **kwargs):
        raise psycopg.errors.DataError("value out of range\nDETAIL: the limit is 42")
    monkeypatch.setattr(Monitor, "events", fails)
    err = one_line(invoke("events", dsn=db), 1, "value out of range")
    assert err.rstrip("\n").endswith("value out of range\\nDETAIL: the limit is 42")
