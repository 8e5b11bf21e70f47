"""Every common ledger shape, mapped by its example file in docs/examples/ alone (no SQL object of the
user's): on clean traffic every detector runs and opens nothing; each injected anomaly opens exactly
the expected event, once (not once per leg).

The ledgers are written here in those shapes (tests/shapes/README.md): a double-entry transfer
ledger with state in appended rows, an entry-per-movement ledger with running balances and no
status, and a payments table with a separate balances table. The card ledger is the reference
ledger (tests/property/test_clean_ledger.py), whose mapping docs/examples/card.toml is.

SHAPE_ROWS sets the number of transactions (default 100,000; `make test` runs fewer, `make
test-shapes` the full size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from monitorctl import mapping

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "docs" / "examples"
ROWS = int(os.environ.get("SHAPE_ROWS", "100000"))
ACCOUNTS = max(20, ROWS // 50)

EXPECTED = {
    "double_entry": {
        ("failed_debit", "900000001", "900000002"),
        ("balance_mismatch", "900000001", "900000001"),
        ("balance_mismatch", "900000002", "900000002"),
        ("concurrent_txn", "900000003", "900000004"),
        ("stuck_pending", "900000005", "900000007"),
        ("negative_balance", "900000006", "900000006"),
        ("consecutive_failures", "900000008", "900000011"),
    },
    "entries": {
        ("balance_chain", "inject-chain", "900000004"),
        ("balance_mismatch", "inject-chain", "inject-chain"),
        ("balance_chain", "inject-gap", "900000009"),
        ("concurrent_txn", "inject-double", "900000012"),
    },
    "payments": {
        ("failed_debit", "733a9280-4e42-e144-5e8a-cfd007228c87", "0e6d55ec-35c0-901f-1835-a6d72c73c194"),
        ("balance_mismatch", "733a9280-4e42-e144-5e8a-cfd007228c87", "733a9280-4e42-e144-5e8a-cfd007228c87"),
        ("stuck_pending", "9a0affb1-050c-a571-6cb8-e91dfd53952e", "24203cf4-fe21-5801-73d8-5e8f20d73786"),
        ("consecutive_failures", "0dd1490b-f6fe-7143-f53e-0a17318a20c4", "4993e034-c020-51df-c7e2-42144c03b3fc"),
    },
}
# the detectors each mapping turns off, as install says
OFF = {
    "double_entry": {"duplicate_scan", "balance_chain"},
    "entries": {"duplicate_scan", "failed_debit", "consecutive_failures", "stuck_pending", "failure_rate"},
    "payments": {"duplicate_scan", "balance_chain"},
}
CONFIG = {"double_entry": "double-entry.toml", "entries": "entries.toml", "payments": "payments.toml"}


def sql_of(shape: str, part: str) -> str:
    return ((HERE / f"{shape}.{part}.sql").read_text()
            .replace("{rows}", str(ROWS)).replace("{accounts}", str(ACCOUNTS)))


def monitorctl(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitorctl", "--dsn", dsn, *args],
                          capture_output=True, text=True, timeout=300)


def run_all(c) -> list[tuple]:
    """Every enabled detector once, detector_health last (judging them as scheduled); the failed runs."""
    c.execute("update monitor.detectors set scheduled = enabled")
    names = [r[0] for r in c.execute("select name from monitor.detectors where enabled "
                                     "order by name = 'detector_health', name")]
    for name in names:
        c.execute("select monitor.run_detector(%s)", (name,))
    return c.execute("select detector, error from monitor.detector_runs where status <> 'ok'").fetchall()


@pytest.mark.parametrize("shape", sorted(EXPECTED))
def test_a_mapping_file_alone_fits_the_shape(fresh_db, shape):
    with psycopg.connect(fresh_db, autocommit=True) as c:
        with c.transaction():
            c.execute(sql_of(shape, "schema"))
            c.execute(sql_of(shape, "build"))
        c.execute("analyze")
    proc = monitorctl(fresh_db, "install", "--config", str(EXAMPLES / CONFIG[shape]), "--no-schedule")
    assert proc.returncode == 0, proc.stderr
    for name in OFF[shape]:
        assert f"{name} is off: " in proc.stderr, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    # doctor names the indexes the mapping's expressions need (ids read as text, clock times read in
    # their zone); with them made, it passes
    proc = monitorctl(fresh_db, "doctor", "--format", "json")
    missing = [r for r in json.loads(proc.stdout) if r["status"] == "missing"]
    assert (proc.returncode == 1) == bool(missing), proc.stderr
    with psycopg.connect(fresh_db, autocommit=True) as c:
        for advice in missing:
            c.execute(advice["suggestion"])
        c.execute("analyze")
    proc = monitorctl(fresh_db, "doctor", "--format", "json")
    assert proc.returncode == 0, proc.stdout
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("select count(distinct txn_id) >= %s from monitor.src_transactions",
                         (ROWS,)).fetchone()[0]
        off = {r[0] for r in c.execute("select name from monitor.detectors where not enabled")}
        assert off == OFF[shape]
        assert run_all(c) == []
        events = c.execute("select detector, subject, summary from monitor.events").fetchall()
        assert events == [], f"false positives on clean traffic: {events[:5]}"

        with c.transaction():
            c.execute(sql_of(shape, "inject"))
        assert run_all(c) == []
        # the injected stuck transactions are written with creation times 20 and 30 minutes back: rows
        # that old but new to the runs are stuck_pending's full pass's, hourly (docs/detectors.md)
        c.execute("select monitor.run_detector('stuck_pending', now() - interval '1 day')")
        got = set(c.execute("select detector, subject, dedup_key from monitor.events").fetchall())
    assert got == EXPECTED[shape], (f"unexpected: {sorted(got - EXPECTED[shape])}; "
                                    f"missing: {sorted(EXPECTED[shape] - got)}")

    # the CLI shows amounts in major units (amount_scale = 100): a failed debit of 5000 cents is 50.00
    if shape in ("double_entry", "payments"):
        rows = json.loads(monitorctl(fresh_db, "events", "--detector", "failed_debit", "--format", "json").stdout)
        assert [float(r["amount"]) for r in rows] == [50.0]
    if shape == "entries":  # balance_chain's evidence holds both rows of the broken link
        with psycopg.connect(fresh_db) as c:
            ev = c.execute("select evidence from monitor.events where dedup_key = '900000009'").fetchone()[0]
        assert ev["broken"] == "link" and ev["previous"]["balance_after"] != ev["entry"]["balance_before"]


def test_the_card_example_is_the_reference_ledgers_mapping():
    """docs/examples/card.toml maps the reference ledger, which test_clean_ledger exercises."""
    cfg = mapping.load(EXAMPLES / "card.toml")
    assert cfg["sources"] == mapping.ledger_mapping()["sources"]
