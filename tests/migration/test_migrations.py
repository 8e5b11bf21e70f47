"""Each migration applies and rolls back through yoyo, in order, and applies again afterwards."""

from __future__ import annotations

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from monitorctl import resources
from monitorctl.db import yoyo_uri
from monitorctl.install import MIGRATION_TABLE, apply_migrations
from tests.foundation_support import TABLES


def _relations(conn, schema: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "select c.relname from pg_class c where c.relnamespace = to_regnamespace(%s)"
        " and c.relkind in ('r', 'v', 'm') and c.relname !~ 'yoyo'", (schema,))}


def _monitor_state(conn) -> dict:
    return {
        "tables": _relations(conn, "monitor"),
        "finding_type": conn.execute("select to_regtype('monitor.finding')").fetchone()[0] is not None,
        "settings_rows": conn.execute("select count(*) from monitor.settings").fetchone()[0]
        if conn.execute("select to_regclass('monitor.settings')").fetchone()[0] else None,
    }


def _ledger_state(conn) -> dict:
    return {
        "schema": conn.execute("select to_regnamespace('ledger')").fetchone()[0] is not None,
        "tables": _relations(conn, "ledger"),
        "triggers": {r[0] for r in conn.execute(
            "select tgname from pg_trigger where not tgisinternal and tgrelid::regclass::text like 'ledger.%'")},
    }


def _has_monitor_schema(state: dict) -> bool:
    return TABLES <= state["tables"] and state["finding_type"] and bool(state["settings_rows"])


CHECKS = {
    "monitor": {
        "0001.monitor-schema": lambda c: _has_monitor_schema(_monitor_state(c)),
        "0002.roles": lambda c: c.execute(
            "select pg_has_role('monitor_operator', 'monitor_reader', 'member')"
            " and not (select rolcanlogin from pg_roles where rolname = 'monitor_reader')").fetchone()[0],
        "0003.account-totals-hash": lambda c: c.execute(
            "select exists (select from pg_indexes where schemaname = 'monitor'"
            " and indexname = 'account_totals_lookup' and indexdef like '%USING hash%')"
            " and (select reloptions from pg_class where oid = 'monitor.account_totals'::regclass)"
            " = '{fillfactor=70}'").fetchone()[0],
        "0004.watermark-seen": lambda c: c.execute(
            "select exists (select from information_schema.columns where table_schema = 'monitor'"
            " and table_name = 'watermarks' and column_name = 'seen_xmin')").fetchone()[0],
        "0005.security": lambda c: c.execute(
            "select exists (select from information_schema.columns where table_schema = 'monitor'"
            " and table_name = 'detectors' and column_name = 'function_digest')"
            " and to_regclass('monitor.run_locks') is not null"
            " and exists (select from monitor.settings where key = 'scheduling.enabled')").fetchone()[0],
        "0006.failure-minutes": lambda c: c.execute(
            "select relpersistence = 'u' from pg_class where oid = to_regclass('monitor.failure_minutes')"
            ).fetchone()[0] is True,
        "0007.notifications": lambda c: c.execute(
            "select to_regclass('monitor.deliveries') is not null and to_regclass('monitor.receivers') is not null"
            " and pg_get_constraintdef((select oid from pg_constraint where conname = 'alert_history_transition_check'))"
            " like '%notified%'").fetchone()[0],
        "0008.counters": lambda c: c.execute(
            "select exists (select from monitor.counters where name = 'events_resolved')").fetchone()[0],
    },
    "ledger": {
        "0001.ledger-schema": lambda c: _ledger_state(c) == {
            "schema": True, "tables": {"accounts", "transactions", "scans"},
            "triggers": {"accounts_touch", "transactions_touch"}},
        "0002.failed-indexes": lambda c: c.execute(
            "select count(*) from pg_indexes where schemaname = 'ledger'"
            " and indexname in ('transactions_failed_created', 'transactions_failed_updated')"
            " and indexdef like '%WHERE (status = ''failed''::text)'").fetchone()[0] == 2,
        "0003.pinned-search-path": lambda c: c.execute(
            "select proconfig = '{\"search_path=pg_catalog, ledger, pg_temp\"}' from pg_proc"
            " where oid = 'ledger.touch_updated_at()'::regprocedure").fetchone()[0],
    },
}


@pytest.mark.parametrize("which", ["monitor", "ledger"])
def test_each_migration_applies_and_rolls_back(fresh_db, which):
    migrations = read_migrations(str(resources.migrations_dir(which)))
    ids = [m.id for m in migrations]
    assert ids == resources.migration_ids(which)
    assert set(ids) == set(CHECKS[which]), "every migration needs a check here"
    for m in migrations:
        assert (resources.migrations_dir(which) / f"{m.id}.rollback.sql").exists(), f"{m.id} has no rollback"

    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("create schema monitor")  # where yoyo keeps its bookkeeping (as install does)
        empty = _monitor_state(c) if which == "monitor" else _ledger_state(c)
        backend = get_backend(yoyo_uri(fresh_db), migration_table=MIGRATION_TABLE)
        try:
            # apply one at a time, each adding what it promises
            for i, m in enumerate(migrations):
                todo = backend.to_apply(migrations[: i + 1])
                assert [t.id for t in todo] == [m.id]
                backend.apply_migrations(todo)
                assert CHECKS[which][m.id](c), f"{m.id} applied but its objects are missing"
            assert list(backend.to_apply(migrations)) == []

            # roll back one at a time, newest first
            for m in reversed(migrations):
                backend.rollback_migrations(backend.to_rollback(_only(migrations, m)))
                assert m.hash not in backend.get_applied_migration_hashes()
            assert list(backend.to_rollback(migrations)) == []
            assert (_monitor_state(c) if which == "monitor" else _ledger_state(c)) == empty

            # and again from nothing, the way install applies them (each recorded with its changes)
            assert apply_migrations(fresh_db, which) == ids
            assert list(backend.to_apply(migrations)) == []
            for m in migrations:
                assert CHECKS[which][m.id](c)
        finally:
            backend.connection.close()


def _only(migrations, m):
    """A MigrationList holding just migration ``m``."""
    return migrations.__class__([m], migrations.post_apply)
