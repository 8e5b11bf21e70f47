"""The benchmark at its smallest scale, end to end: every figure is produced (no timing is judged)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.report import FIGURES, SEPARATE, lookup

ROOT = Path(__file__).resolve().parents[2]


def test_bench_small_scale_produces_every_figure(tmp_path):
    out = tmp_path / "small.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--scale", "small", "--out", str(out)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for path in FIGURES:
        if path.startswith(SEPARATE):  # a run of their own (the next test)
            continue
        value = lookup(result, path)
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), \
            f"{path} = {value!r}"
    assert result["missing_figures"] == []
    meta = result["meta"]
    assert meta["server"]["postgres"] and meta["scale"]["name"] == "small"
    assert meta["server"]["settings"]["shared_buffers"]
    # the generated ledger has the rows asked for, and each sprinkled anomaly is found on the first run
    gen = result["generation"]["main"]["rows"]
    assert gen["accounts"] == 1000 and gen["transactions"] >= 5000 and gen["scans"] >= 5000
    opened = result["first_run"]["main"]["first"]["events_opened"]
    for detector in ("failed_debit", "balance_mismatch", "consecutive_failures", "negative_balance",
                     "stuck_pending", "duplicate_scan", "concurrent_txn"):
        assert opened.get(detector, 0) >= 3, (detector, opened)
    # the naive rules find the same sprinkled anomalies
    rules = result["naive"]["rules"]
    assert rules["failed_debit"]["findings"] == 3 and rules["stuck_pending"]["findings"] == 3
    assert len(result["write_overhead"]["runs"]) == 6
    goals = {g["goal"] for g in result["goals"]}
    assert len(goals) == 16
    assert result["backfill"]["errors"] == {} and result["backfill"]["slices"] == 30
    assert "steady-state cycle" in proc.stdout  # the table was printed
    # the storm folded every finding, and saw every open condition again, within the default timeout
    assert result["storm"]["errors"] == {} and result["storm"]["findings"] == 2000
    assert "storm: 2,000 findings folded into events" in proc.stdout
    # a detection reached the local receiver, every delivery of the throughput figure arrived, and the
    # storm of 300 events came as one digest
    nt = result["notify"]
    assert nt["errors"] == {} and nt["latency_ms"]["n"] == 5 and nt["throughput"]["deliveries"] == 200
    assert nt["storm"] == {"events": 300, "requests": 1, "digests": 1, "digest_events": 300}
    # every format listed every event, and the peak memory of each run was measured
    st = result["stream"]
    assert st["errors"] == {} and sorted(st["runs"]) == [f"{n}.{f}" for n in (1000, 2000) for f in ("csv", "json", "table")]
    assert all(r["peak_rss_mb"] > 10 for r in st["runs"].values())
    # the server answered /metrics and the overview over the 2,000 events, 100 of them active
    assert (result["serve"]["events"], result["serve"]["active"]) == (2000, 100)


def test_bench_mapped_ledger_with_doctors_indexes_produces_its_figures(tmp_path):
    out = tmp_path / "mapped.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--scale", "small", "--mapped-only", "--out", str(out)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["missing_figures"] == []
    for path in FIGURES:
        if path.startswith("mapped."):
            value = lookup(result, path)
            assert isinstance(value, (int, float)) and math.isfinite(value), f"{path} = {value!r}"
    mp = result["mapped"]
    assert mp["shared_buffers"] == "128MB"
    for key in ("main", "ref"):
        indexes = mp["indexes"][key]
        # the ledger's own indexes went, doctor's came, and doctor is then content
        assert indexes["dropped"] and indexes["not_ok_after"] == []
        assert any("WHERE (case status" in s and "'pending'" in s for s in indexes["created"]), indexes["created"]
        assert mp["idle"][key]["errors"] == {} and mp["steady"][key]["errors"] == {}
        assert mp["first_run"][key]["first"]["errors"] == {}
    assert [g["goal"] for g in result["goals"]] == [
        "mapped ledger, doctor's indexes: idle cycle, large vs small",
        "mapped ledger, doctor's indexes: steady cycle, large vs small"]
    assert "idle cycle (no new rows)" in proc.stdout
