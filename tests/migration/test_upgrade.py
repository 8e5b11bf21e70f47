"""Upgrades that really upgrade: install a released monitorctl (from a git worktree of its commit),
fill it with events, upgrade with a plain `install` of this checkout, and compare with a fresh install
of this checkout (docs/operations.md, "Upgrading").

Each release in RELEASES stays here for good: an upgrade from any of them must keep working.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.foundation_support import cli_env, pg_dump_schema
from tests.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
RELEASES = {"0.1.0": "a46a6e6"}  # version -> commit


def worktree(tmp_path_factory, commit: str) -> Path:
    """A checkout of ``commit``, or skip when this is not a git clone that holds it."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"commit {commit} is not in this clone")
    path = tmp_path_factory.mktemp(f"release-{commit}") / "src"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), commit],
                   check=True, capture_output=True)
    return path


def monitorctl_of(source: Path, dsn: str, *args: str) -> subprocess.CompletedProcess:
    """`monitorctl` as the checkout at ``source`` has it (its code, its sql/ and migrations/)."""
    env = cli_env() | {"PYTHONPATH": str(source)}
    return subprocess.run([sys.executable, "-m", "monitorctl", "--dsn", dsn, *args], cwd=source, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def grants(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute("""
            select p.oid::regprocedure::text, r.rolname
              from pg_proc p cross join pg_roles r
             where p.pronamespace = 'monitor'::regnamespace and r.rolname in ('monitor_reader', 'monitor_operator')
               and has_function_privilege(r.oid, p.oid, 'execute')
            union all
            select c.oid::regclass::text, r.rolname
              from pg_class c cross join pg_roles r
             where c.relnamespace = 'monitor'::regnamespace and r.rolname in ('monitor_reader', 'monitor_operator')
               and has_table_privilege(r.oid, c.oid, 'select')
             order by 1, 2""").fetchall()


def contents(dsn: str) -> dict:
    with psycopg.connect(dsn) as c:
        return {
            "events": c.execute("select event_id, detector, status, dedup_key, occurrences, resolved_by"
                                " from monitor.events order by event_id").fetchall(),
            "history": c.execute("select history_id, event_id, transition, actor from monitor.alert_history"
                                 " order by history_id").fetchall(),
            "settings": c.execute("select key, value from monitor.settings where key not in"
                                  " ('install.schema', 'scheduling.enabled') order by key").fetchall(),
            "detectors": c.execute("select name, enabled, schedule, params from monitor.detectors"
                                   " order by name").fetchall(),
        }


@pytest.mark.parametrize("version", sorted(RELEASES))
def test_upgrade_from_a_release_matches_a_fresh_install_and_loses_nothing(pg_server, tmp_path_factory, version):
    source = worktree(tmp_path_factory, RELEASES[version])
    old = pg_server.create_database(f"upgrade_{version.replace('.', '_')}_{os.getpid()}")
    new = pg_server.create_database(f"fresh_{version.replace('.', '_')}_{os.getpid()}")
    try:
        r = monitorctl_of(source, old, "install", "--with-ledger", "--no-schedule")
        assert r.returncode == 0, r.stderr
        with psycopg.connect(old, autocommit=True) as c:
            ledger = Ledger(c).recent(300)
            ledger.account("N", balance=-5)
            for i in range(3):
                ledger.txn(f"f{i}", f"A{i}", amount=-2, status="failed", before=10, after=8, at=i)
            for name in ("failed_debit", "negative_balance"):
                c.execute("select monitor.run_detector(%s)", (name,))
            c.execute("select monitor.acknowledge(array[1]::bigint[], 'alice')")
            c.execute("select monitor.resolve(array[2]::bigint[], 'refunded', 'bob')")
            c.execute("update monitor.settings set value = '14' where key = 'retention.events_days'")
            c.execute("""select monitor.set_params('duplicate_scan', '{"window": "3 seconds"}')""")
            c.execute("update monitor.detectors set enabled = false where name = 'failure_rate'")
        before = contents(old)
        assert len(before["events"]) == 4

        r = monitorctl_of(ROOT, old, "install", "--no-schedule")
        assert r.returncode == 0, r.stderr
        assert monitorctl_of(ROOT, new, "install", "--with-ledger", "--no-schedule").returncode == 0

        upgraded, fresh = pg_dump_schema(old), pg_dump_schema(new)
        assert upgraded == fresh, "\n".join(difflib.unified_diff(fresh.splitlines(), upgraded.splitlines(),
                                                                  "fresh", "upgraded", lineterm="", n=2))
        assert grants(old) == grants(new)
        after = contents(old)
        # every value a user set is kept; a parameter the release adds comes with its default
        fresh_detectors = {d[0]: d for d in contents(new)["detectors"]}
        old_detectors = {d[0]: d for d in before.pop("detectors")}
        upgraded_detectors = {d[0]: d for d in after.pop("detectors")}
        assert set(upgraded_detectors) == set(fresh_detectors) >= set(old_detectors)
        for name, (_, enabled2, schedule2, params2) in upgraded_detectors.items():
            _, enabled, schedule, params = old_detectors.get(name, fresh_detectors[name])  # new: its defaults
            assert (enabled, schedule) == (enabled2, schedule2), name
            assert params2 == fresh_detectors[name][3] | params, name
        # every setting kept; a setting the release adds comes with its default
        fresh_settings = dict(contents(new)["settings"])
        assert dict(after.pop("settings")) == fresh_settings | dict(before.pop("settings"))
        assert after == before
        # and it works: runs, the CLI, a new event
        with psycopg.connect(old, autocommit=True) as c:
            Ledger(c).recent(60).txn("late", "B", amount=-1, status="failed", before=3, after=2)
        assert monitorctl_of(ROOT, old, "run").returncode == 0
        assert monitorctl_of(ROOT, old, "status", "--format", "json").returncode == 0
        with psycopg.connect(old) as c:
            assert c.execute("select count(*) from monitor.events where dedup_key = 'late'").fetchone()[0] == 1
            assert c.execute("select count(*) from monitor.detector_runs where status = 'error'").fetchone()[0] == 0
    finally:
        pg_server.drop_database(old.split("dbname=")[-1])
        pg_server.drop_database(new.split("dbname=")[-1])
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)], capture_output=True)


def test_views_dropped_by_a_cascade_are_named_and_rebuilt_by_install(db):
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("select monitor.refresh()")
        c.execute("drop view monitor.src_transactions cascade")  # as a user's DROP ... CASCADE would
    r = monitorctl_of(ROOT, db, "run", "volume_anomaly")
    assert r.returncode == 3 and "monitor.src_transactions" in r.stderr and "monitorctl install" in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert monitorctl_of(ROOT, db, "install", "--no-schedule").returncode == 0
    r = monitorctl_of(ROOT, db, "run", "volume_anomaly")
    assert r.returncode == 0, r.stderr
    with psycopg.connect(db) as c:
        assert c.execute("select ispopulated from pg_matviews where matviewname = 'volume_hourly'").fetchone()[0]


def test_a_custom_detector_of_an_earlier_release_is_named_until_registered_again(pg_server, tmp_path_factory):
    source = worktree(tmp_path_factory, RELEASES["0.1.0"])
    dsn = pg_server.create_database(f"upgrade_custom_{os.getpid()}")
    try:
        assert monitorctl_of(source, dsn, "install", "--with-ledger", "--no-schedule").returncode == 0
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("create function public.detect_mine(params jsonb, since timestamptz) returns setof"
                      " monitor.finding language sql set search_path = pg_catalog, pg_temp"
                      " as $$ select null::monitor.finding where false $$")
            c.execute("select monitor.register_detector('mine', 'public.detect_mine', 'low', 'finding')")
        r = monitorctl_of(ROOT, dsn, "install", "--no-schedule")
        assert r.returncode == 0 and "custom detectors mine must be registered again" in r.stderr, r.stderr
        r = monitorctl_of(ROOT, dsn, "run", "mine")
        assert r.returncode == 1 and "re-register it" in r.stdout
        r = monitorctl_of(ROOT, dsn, "detectors", "add", "mine", "--function", "public.detect_mine",
                          "--severity", "low", "--kind", "finding")
        assert r.returncode == 0, r.stderr
        assert monitorctl_of(ROOT, dsn, "run", "mine").returncode == 0
    finally:
        pg_server.drop_database(dsn.split("dbname=")[-1])
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)], capture_output=True)
