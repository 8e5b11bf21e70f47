"""monitorctl on a Citus cluster (docs/scaling.md): `make test-citus` runs these against three local
clusters, a coordinator with pg_cron and two workers; skipped, saying why, where Citus is not installed.

The scenario tests (tests/sql) and the acceptance tests run there too: the events they assert are the
single node's. Here: the distributed reference ledger, doctor, the late-window skip, and the demo's
festival giving the same events on the cluster as on a single node."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from monitorctl import embedded
from monitorctl.api import Monitor
from tests.conftest import on_citus
from tests.foundation_support import monitorctl

pytestmark = pytest.mark.skipif(not on_citus(), reason="the Citus suite runs with MONITOR_TEST_BACKEND=citus "
                                                       "(make test-citus)")

LEDGER = ("ledger.accounts", "ledger.transactions", "ledger.scans")


def citus_tables(conn) -> dict:
    return {r[0]: r[1:] for r in conn.execute(
        "select table_name::text, citus_table_type, distribution_column, colocation_id from citus_tables")}


def primary_key(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "select a.attname::text from pg_constraint c join pg_attribute a"
        " on a.attrelid = c.conrelid and a.attnum = any (c.conkey)"
        " where c.conrelid = %s::regclass and c.contype = 'p' order by a.attname", (table,))]


# a payments schema of the user's own: wallets and their transactions, mapped by PAY_CONFIG
PAY_CONFIG = {"sources": {
    "transactions": {"relation": "pay.txns", "columns": {
        "txn_id": "id", "account_id": "account", "amount": "amount", "status": "status",
        "created_at": "created_at", "updated_at": "updated_at"}},
    "accounts": {"relation": "pay.wallets", "columns": {
        "account_id": "account", "balance": "balance", "updated_at": "updated_at"}}}}


def pay_tables(dsn: str, *distribute: str) -> None:
    """Create pay.txns and pay.wallets, then run each of ``distribute`` (Citus calls) on them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema pay")
        conn.execute("create table pay.txns (id text, account text, amount numeric, status text,"
                     " created_at timestamptz default now(), updated_at timestamptz default now())")
        conn.execute("create table pay.wallets (account text primary key, balance numeric,"
                     " updated_at timestamptz default now())")
        for call in distribute:
            conn.execute(call)


def coordinator_database(server, name: str) -> str:
    """A database of the coordinator alone (no worker knows it); its DSN."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.dsn(name)


def test_install_distributed_moves_the_rows_to_the_shards_and_changes_nothing_when_run_again(fresh_db):
    first = monitorctl(fresh_db, "install", "--with-ledger", "--no-schedule")
    assert first.returncode == 0, first.stderr
    assert "Citus " in first.stdout + first.stderr and "on this coordinator" in first.stdout + first.stderr
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert citus_tables(conn) == {}
        conn.execute("insert into ledger.accounts (account_id, balance) values ('a1', 10), ('a2', 5)")
        conn.execute("insert into ledger.transactions (txn_id, account_id, amount, status, balance_before,"
                     " balance_after) values ('t1', 'a1', 10, 'success', 0, 10), ('t2', 'a2', 5, 'success', 0, 5)")
        conn.execute("insert into ledger.scans (scan_id, account_id) values ('s1', 'a1')")

    for _ in range(2):
        done = monitorctl(fresh_db, "install", "--with-ledger", "--distributed", "--no-schedule")
        assert done.returncode == 0, done.stderr
        assert "distributed by account_id" in done.stdout + done.stderr

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        tables = citus_tables(conn)
        assert set(tables) == set(LEDGER)
        assert {t[0] for t in tables.values()} == {"distributed"}
        assert {t[1] for t in tables.values()} == {"account_id"}
        assert len({t[2] for t in tables.values()}) == 1, tables  # co-located
        assert primary_key(conn, "ledger.transactions") == ["account_id", "txn_id"]
        assert primary_key(conn, "ledger.scans") == ["account_id", "scan_id"]
        assert conn.execute("select count(*) from ledger.transactions").fetchone()[0] == 2
        assert conn.execute("select count(*) from ledger.scans").fetchone()[0] == 1
        # nothing left in the coordinator's own copy of the tables (the shards hold the rows)
        for table in LEDGER:
            assert conn.execute("select pg_catalog.pg_relation_size(%s::regclass)", (table,)).fetchone()[0] == 0
        # the trigger still keeps updated_at, now on the workers
        before = conn.execute("select updated_at from ledger.accounts where account_id = 'a1'").fetchone()[0]
        conn.execute("update ledger.accounts set balance = 11 where account_id = 'a1'")
        assert conn.execute("select updated_at from ledger.accounts where account_id = 'a1'").fetchone()[0] > before


def test_distributed_without_the_ledger_or_without_citus_is_refused_before_anything_changes(pg_server, fresh_db):
    alone = monitorctl(fresh_db, "install", "--distributed", "--no-schedule")
    assert alone.returncode == 2 and "pass --with-ledger too" in alone.stderr, alone.stderr
    name = "t_citus_plain"
    coordinator_database(pg_server, name)
    try:
        plain = monitorctl(pg_server.dsn(name), "install", "--with-ledger", "--distributed", "--no-schedule")
        assert plain.returncode == 2, plain.stderr
        assert "--distributed needs Citus: CREATE EXTENSION citus" in plain.stderr
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            assert conn.execute("select count(*) from pg_namespace where nspname in ('monitor', 'ledger')"
                                ).fetchone()[0] == 0
    finally:
        pg_server.drop_database(name)


def test_late_window_skip_is_off_for_distributed_tables_and_on_for_the_coordinators_own(fresh_db):
    pay_tables(fresh_db, "select create_distributed_table('pay.wallets', 'account')")
    with Monitor(fresh_db) as monitor:
        monitor.install(config=PAY_CONFIG, schedule_jobs=False)
        conn = monitor.connection
        views = {v: conn.execute("select pg_get_viewdef(%s::regclass)", (v,)).fetchone()[0]
                 for v in ("monitor.src_transactions", "monitor.src_accounts")}
        assert "s.xmin" in views["monitor.src_transactions"]       # a plain table on the coordinator
        assert "NULL::xid AS row_xmin" in views["monitor.src_accounts"]  # distributed: a worker's xmin
        rows = monitor.doctor()
    by = {(r["relation"], r["columns"].split(",")[0]): r for r in rows}
    assert by[("pay.txns", "distribution")]["status"] == "missing"
    assert "create_distributed_table('pay.txns', 'account')" in by[("pay.txns", "distribution")]["suggestion"]
    assert by[("pay.wallets", "distributed by account")]["status"] == "ok"


def test_doctor_names_a_table_distributed_by_another_column_and_tables_not_co_located(fresh_db):
    pay_tables(fresh_db, "select create_distributed_table('pay.txns', 'id')",
               "select create_distributed_table('pay.wallets', 'account', colocate_with => 'none')")
    with Monitor(fresh_db) as monitor:
        monitor.install(config=PAY_CONFIG, schedule_jobs=False)
    done = monitorctl(fresh_db, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "distributed by id" in done.stdout
    assert "alter_distributed_table('pay.txns', distribution_column := 'account')" in done.stdout

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("select alter_distributed_table('pay.txns', distribution_column := 'account',"
                     " colocate_with := 'none')")
    done = monitorctl(fresh_db, "doctor")
    assert "co-location" in done.stdout and "colocate_with := 'pay.txns'" in done.stdout, done.stdout
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("select alter_distributed_table('pay.wallets', colocate_with := 'pay.txns')")
    done = monitorctl(fresh_db, "doctor", "--format", "json")
    assert "co-location" not in done.stdout and "distributed by id" not in done.stdout, done.stdout


def events_of(dsn: str) -> set[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return set(conn.execute("select detector, dedup_key, severity, status, subject, amount"
                                " from monitor.events").fetchall())


def festival(dsn: str, distributed: bool) -> set[tuple]:
    with Monitor(dsn) as monitor:
        monitor.install(with_ledger=True, schedule_jobs=False, distributed=distributed)
        monitor.load_festival(cards=400, hours=2)
        monitor.run()
    return events_of(dsn)


def test_the_festival_gives_the_same_events_on_the_cluster_as_on_a_single_node(pg_server, fresh_db):
    single = embedded.start_local(with_cron=False)
    try:
        alone = festival(single.create_database("festival"), distributed=False)
    finally:
        single.stop()
    cluster = festival(fresh_db, distributed=True)
    assert {e[0] for e in alone} >= {"failed_debit", "balance_mismatch", "duplicate_scan", "concurrent_txn",
                                     "negative_balance", "stuck_pending", "consecutive_failures"}
    assert cluster == alone


def test_doctor_on_a_ledger_not_distributed_says_what_to_do_first_and_a_view_made_before_distribution(fresh_db):
    done = monitorctl(fresh_db, "install", "--with-ledger", "--no-schedule")
    assert done.returncode == 0, done.stderr
    doc = monitorctl(fresh_db, "doctor", "--format", "json")
    assert doc.returncode == 1, doc.stdout + doc.stderr
    rows = {(r["relation"], r["columns"]): r for r in json.loads(doc.stdout)}
    txns = rows[("ledger.transactions", "distribution")]
    assert txns["status"] == "missing"
    assert "unique keys (transactions_pkey) include account_id" in txns["suggestion"]
    assert "SELECT create_distributed_table('ledger.transactions', 'account_id')" in txns["suggestion"]
    assert "monitorctl install" in txns["suggestion"]
    assert "unique keys" not in rows[("ledger.accounts", "distribution")]["suggestion"]  # its key is account_id

    # distributed by hand after install: the view still reads the rows' xmin, and doctor says so
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("set citus.enable_unsafe_triggers = on")  # ledger.touch_updated_at: its own row only
        conn.execute("select create_distributed_table('ledger.accounts', 'account_id')")
    doc = json.loads(monitorctl(fresh_db, "doctor", "--format", "json").stdout)
    stale = [r for r in doc if r["columns"] == "source view"]
    assert [r["relation"] for r in stale] == ["ledger.accounts"] and "monitorctl install" in stale[0]["suggestion"]
    assert monitorctl(fresh_db, "install", "--no-schedule").returncode == 0
    doc = json.loads(monitorctl(fresh_db, "doctor", "--format", "json").stdout)
    assert not [r for r in doc if r["columns"] == "source view"]


def test_a_single_shard_table_is_distributed_for_the_skip_and_named_by_doctor(fresh_db):
    pay_tables(fresh_db, "select create_distributed_table('pay.wallets', null)")
    with Monitor(fresh_db) as monitor:
        monitor.install(config=PAY_CONFIG, schedule_jobs=False)
        view = monitor.connection.execute("select pg_get_viewdef('monitor.src_accounts'::regclass)").fetchone()[0]
        rows = monitor.doctor()
    assert "NULL::xid AS row_xmin" in view  # its rows are a worker's
    wallets = next(r for r in rows if r["relation"] == "pay.wallets" and "shard" in r["columns"])
    assert wallets["status"] == "missing" and "distribution_column := 'account'" in wallets["suggestion"]


def test_install_on_a_worker_and_distributed_without_workers_are_refused(pg_server, fresh_db):
    worker = pg_server.workers[0]
    done = monitorctl(worker.dsn(embedded.dsn_dbname(fresh_db)), "install", "--with-ledger", "--no-schedule")
    assert done.returncode == 2 and "on a Citus worker: install and run monitorctl on the coordinator" in done.stderr
    name = "t_citus_alone"
    coordinator_database(pg_server, name)  # citus below, but no worker added
    try:
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            conn.execute("create extension citus")
        done = monitorctl(pg_server.dsn(name), "install", "--with-ledger", "--distributed", "--no-schedule")
        assert done.returncode == 2 and "has no workers: SELECT citus_set_coordinator_host" in done.stderr, done.stderr
    finally:
        pg_server.drop_database(name)
