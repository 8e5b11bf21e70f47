"""Exit 3 (docs/cli.md): one line naming `monitorctl install` on an uninstalled database, and naming the
server tried on an unreachable one. Every command is checked in-process in
tests/integration/test_cli_errors.py; here, the installed CLI on a few."""

import socket

from tests.acceptance.support import run_cli

SOME = [["events"], ["ack", "1"], ["status", "--health"], ["detectors", "list"], ["prune", "--dry-run"]]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uninstalled_database_exits_3_naming_install(fresh_db):
    for args in SOME:
        r = run_cli(*args, dsn=fresh_db)
        assert r.returncode == 3, (args, r.stderr)
        assert r.stdout == "" and r.stderr.count("\n") == 1 and "`monitorctl install`" in r.stderr, args


def test_unreachable_database_exits_3_naming_the_server():
    port = closed_port()
    for args in (["events"], ["status", "--health"]):
        r = run_cli(*args, dsn=f"postgresql://nobody@127.0.0.1:{port}/payments", PGCONNECT_TIMEOUT="3")
        assert r.returncode == 3 and r.stdout == "" and r.stderr.count("\n") == 1, (args, r.stderr)
        assert f"127.0.0.1:{port}/payments" in r.stderr and "Traceback" not in r.stderr


def test_the_dsn_comes_from_the_environment(db):
    assert run_cli("events", MONITOR_DSN=db).returncode == 0
    assert run_cli("events", DATABASE_URL=db).returncode == 0
