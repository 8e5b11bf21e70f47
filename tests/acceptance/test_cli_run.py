"""monitorctl run --since: a backfill runs each finding detector slice by slice, oldest first, each in its
own transaction and timeout, with progress on stderr; it finds what one pass over the window finds,
and running it again (after an interruption, say) adds no event twice (docs/cli.md)."""

from __future__ import annotations

import json

import psycopg

from tests.acceptance.support import run_cli
from tests.ledger import Ledger

FINDINGS = ["failed_debit", "consecutive_failures", "duplicate_scan", "concurrent_txn"]


def five_days_of_anomalies(conn) -> None:
    """Every finding rule's anomaly once a day for five days, in the middle of each day."""
    ledger = Ledger(conn).recent(5 * 86400)
    for day in range(5):
        at = day * 86400 + 43200
        a = f"D{day}"
        ledger.txn(f"fd{day}", a, amount=-5, status="failed", before=20, after=15, at=at)        # failed debit
        for k in range(3):                                                                        # a run of 3
            ledger.txn(f"cf{day}_{k}", f"R{day}", status="failed", at=at + 60 * k)
        ledger.scan(f"s{day}a", f"S{day}", at=at)                                                 # a double scan
        ledger.scan(f"s{day}b", f"S{day}", at=at + 1)
        ledger.txn(f"ct{day}a", f"C{day}", amount=-1, at=at)                                      # two at once
        ledger.txn(f"ct{day}b", f"C{day}", amount=-1, at=at + 1)
    # a burst across a slice boundary: scans 4 s apart for 96 minutes around one day ago, where a
    # backfill's 12-hour slices from 6 days back have a boundary (give or take the seconds to start it)
    conn.execute("insert into ledger.accounts (account_id) values ('CHAIN')")
    conn.execute("insert into ledger.scans (scan_id, account_id, scanned_at)"
                 " select 'chain' || k, 'CHAIN', now() - interval '1 day 48 minutes' + k * interval '4 seconds'"
                 " from generate_series(0, 1439) k")


def events(conn, detectors) -> list[tuple]:
    return conn.execute("select detector, dedup_key from monitor.events where detector = any(%s)"
                        " order by 1, 2", (detectors,)).fetchall()


def forget(conn) -> None:
    for sql in ("delete from monitor.events where detector = any(%s)",
                "delete from monitor.alert_history where detector = any(%s)",
                "delete from monitor.watermarks where detector = any(%s)"):
        conn.execute(sql, (FINDINGS,))


def test_a_sliced_backfill_finds_what_one_pass_finds_shows_progress_and_adds_nothing_twice(db, conn):
    five_days_of_anomalies(conn)
    r = run_cli("run", *FINDINGS, "--since", "6d", "--slice", "7d", dsn=db)  # one pass: the reference
    assert r.returncode == 0, r.stderr
    reference = events(conn, FINDINGS)
    assert len(reference) >= 5 * 4 + 1
    forget(conn)
    r = run_cli("run", *FINDINGS, "--since", "6d", "--slice", "12h", "--format", "json", dsn=db)
    assert r.returncode == 0, r.stderr
    progress = [line for line in r.stderr.splitlines() if "slice" in line]
    assert any("failed_debit: slice 1/12" in line for line in progress), r.stderr
    assert any("(100%)" in line for line in progress)
    assert {row["detector"]: row["slices"] for row in json.loads(r.stdout)} == {d: 12 for d in FINDINGS}
    assert events(conn, FINDINGS) == reference
    # the chain of scans across the last day is one event, however the slices cut it
    assert conn.execute("select count(*), max((evidence ->> 'scans')::int) from monitor.events"
                        " where detector = 'duplicate_scan' and subject = 'CHAIN'").fetchone() == (1, 1440)
    # again (as after an interruption): nothing is added twice
    r = run_cli("run", *FINDINGS, "--since", "6d", "--slice", "12h", "--format", "json", dsn=db)
    assert r.returncode == 0 and sum(row["events_opened"] for row in json.loads(r.stdout)) == 0
    assert events(conn, FINDINGS) == reference


def test_a_backfill_slice_that_fails_is_named_and_a_bad_slice_refused(db, conn):
    conn.execute("""create function public.detect_old_trouble(params jsonb, since timestamptz)
                    returns setof monitor.finding language sql set search_path = pg_catalog, pg_temp as $$
                    select null::monitor.finding where 1 / (case when since < now() - interval '2 days'
                                                                 then 0 else 1 end) = 0 $$""")
    conn.execute("select monitor.register_detector('old_trouble', 'public.detect_old_trouble', 'low', 'finding')")
    r = run_cli("run", "old_trouble", "--since", "3d", "--slice", "1d", dsn=db)
    assert r.returncode == 1, r.stderr
    assert "slice 1/3" in r.stdout and "division by zero" in r.stdout
    r = run_cli("run", "old_trouble", "--since", "3d", "--slice", "30s", dsn=db)
    assert r.returncode == 2 and "--slice" in r.stderr and len(r.stderr.splitlines()) == 1
