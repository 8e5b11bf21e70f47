"""Every operator command exits 3 with one line naming `monitorctl install` on an uninstalled database,
and naming the server on an unreachable one (CONTRACT §6); in-process."""

import socket

from tests.acceptance.support import invoke

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
