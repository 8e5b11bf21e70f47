"""The whole CLI as each role, with exactly its grants (docs/security.md), through the installed
`monitorctl`: every read command works as monitor_reader, every operator command as
monitor_operator, in a monitored database and in pg_cron's own; what a role may not do fails with
one line and changes nothing."""

from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.support import run_cli, with_user
from tests.foundation_support import clean_cron_database, skip_unless_cron_database_is_ours
from tests.ledger import Ledger

_n = itertools.count()

READ_COMMANDS = [
    ["events"], ["events", "--format", "json"], ["events", "--status", "all", "--format", "csv"],
    ["show", "{event}"], ["show", "{event}", "--format", "json"],
    ["status"], ["status", "--format", "json"], ["detectors", "list"], ["migrate", "status"], ["doctor"],
    ["receivers", "list"], ["receivers", "list", "--format", "json"], ["routes", "list"], ["silence", "list"],
    ["deliveries"], ["deliveries", "--status", "dead", "--format", "csv"],
]
OPERATOR_COMMANDS = [["run", "failed_debit"], ["run"], ["ack", "{event}"], ["resolve", "{event}", "--note", "done"],
                     ["silence", "add", "--detector", "failed_debit", "--for", "1h", "--comment", "on it"]]
ADMIN_COMMANDS = [
    ["detectors", "set", "failure_rate", "min_volume=10"], ["detectors", "disable", "failure_rate"],
    ["prune"], ["receivers", "add", "other", "--type", "webhook", "--url", "http://127.0.0.1:9/"],
    ["receivers", "remove", "hook"], ["receivers", "test", "hook"], ["routes", "add", "--receiver", "hook"],
    ["notify", "--once"], ["install"], ["uninstall", "--yes"],
]


@pytest.fixture
def roles(pg_server, template_db):  # the template's install made the NOLOGIN roles
    """{'reader': role, 'operator': role, 'nobody': role}: LOGIN roles holding exactly that grant."""
    made = {}
    with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
        for kind, grant in (("reader", "monitor_reader"), ("operator", "monitor_operator"), ("nobody", None)):
            name = f"cli_{kind}_{os.getpid()}_{next(_n)}"
            c.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
            if grant:
                c.execute(sql.SQL("grant {} to {}").format(sql.Identifier(grant), sql.Identifier(name)))
            made[kind] = name
    yield made
    with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
        for name in made.values():
            c.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))


def with_event(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        ledger = Ledger(c).recent(60)
        ledger.txn(f"r{next(_n)}", "RC", amount=-3, status="failed", before=9, after=6)
        ledger.run("failed_debit")
        return c.execute("select max(event_id) from monitor.events where status = 'open'").fetchone()[0]


def as_role(dsn: str, role: str, args: list[str], event: int):
    return run_cli(*[a.format(event=event) for a in args], dsn=with_user(dsn, role))


def assert_roles_work(dsn: str, roles: dict) -> None:
    for args in (["receivers", "add", "hook", "--type", "webhook", "--url", "http://127.0.0.1:9/"],
                 ["routes", "add", "--receiver", "hook"]):
        assert run_cli(*args, dsn=dsn).returncode == 0
    event = with_event(dsn)
    reads = [(kind, args) for args in READ_COMMANDS for kind in ("reader", "operator")]
    with ThreadPoolExecutor(4) as pool:  # read-only: they may run side by side
        results = list(pool.map(lambda ka: as_role(dsn, roles[ka[0]], ka[1], event), reads))
    for (kind, args), r in zip(reads, results):
        assert r.returncode == 0 or (args == ["doctor"] and r.returncode == 1 and "index" in r.stderr), \
            (kind, args, r.stderr)
        assert "permission denied" not in r.stderr, (kind, args, r.stderr)
    for args in OPERATOR_COMMANDS:
        r = as_role(dsn, roles["operator"], args, event)
        assert r.returncode == 0, (args, r.stderr)
    with psycopg.connect(dsn) as c:
        assert c.execute("select status, resolved_by, resolution_note from monitor.events where event_id = %s",
                         (event,)).fetchone() == ("resolved", roles["operator"], "done")
    # what a role may not do: one line, exit 1, nothing changed
    event = with_event(dsn)
    denied = [(kind, args) for kind, commands in (("reader", OPERATOR_COMMANDS + ADMIN_COMMANDS),
                                                  ("operator", ADMIN_COMMANDS),
                                                  ("nobody", READ_COMMANDS[:1] + OPERATOR_COMMANDS[2:]))
              for args in commands]
    with ThreadPoolExecutor(4) as pool:  # each is refused and changes nothing, so they may overlap
        results = list(pool.map(lambda ka: as_role(dsn, roles[ka[0]], ka[1], event), denied))
    for (kind, args), r in zip(denied, results):
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, (kind, args, r.stderr)
        assert "permission denied" in r.stderr or "must be owner" in r.stderr, (kind, args, r.stderr)
    with psycopg.connect(dsn) as c:
        assert c.execute("select status from monitor.events where event_id = %s", (event,)).fetchone() == ("open",)
        assert c.execute("select array_agg(name) from monitor.receivers").fetchone()[0] == ["hook"]
        assert c.execute("select count(*) from monitor.routes").fetchone()[0] == 1
        assert c.execute("select count(*) from monitor.delivery_attempts").fetchone()[0] == 0
        assert c.execute("select params ->> 'min_volume', enabled from monitor.detectors"
                         " where name = 'failure_rate'").fetchone() == ("20", True)


def test_every_command_as_each_role_in_a_monitored_database(db, roles):
    assert_roles_work(db, roles)


def test_every_command_as_each_role_in_pg_crons_database(pg_server, roles):
    dsn = skip_unless_cron_database_is_ours(pg_server)
    try:
        r = run_cli("install", "--with-ledger", dsn=dsn)
        assert r.returncode == 0, r.stderr
        assert_roles_work(dsn, roles)
        doc = json.loads(run_cli("status", "--format", "json", dsn=with_user(dsn, roles["reader"])).stdout)
        assert doc["pg_cron"]["available"] and doc["pg_cron"]["database"] == pg_server.cron_database
    finally:
        clean_cron_database(pg_server, dsn)


def test_a_reader_sees_pg_cron_in_another_database(pg_server, db, roles):
    if not pg_server.has_cron:
        pytest.skip("no pg_cron")
    doc = json.loads(run_cli("status", "--format", "json", dsn=with_user(db, roles["reader"])).stdout)
    assert doc["pg_cron"]["available"] and doc["pg_cron"]["database"] == pg_server.cron_database, doc["pg_cron"]
