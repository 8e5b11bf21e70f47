"""Shared pieces of the benchmark: scales, SQL files, timing, progress."""

from __future__ import annotations

import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Scale:
    name: str
    accounts: int
    transactions: int
    scans: int
    anomalies: int = 20  # per kind; the same at every scale so standing conditions cost the same
    days: int = 30
    ref: str | None = None  # the smaller ledger the steady-state cycle is compared with
    delta_transactions: int = 10_000
    delta_scans: int = 10_000
    reps: int = 5  # steady-state cycles per ledger
    full_reps: int = 3  # full reconciliation passes
    pgbench_seconds: int = 120  # the second minute, measured, holds one steady pg_cron tick
    pgbench_rounds: int = 3  # each round is one run without and one with detection
    pgbench_clients: int = 4
    pgbench_rate: int | None = None  # transactions a second (pgbench -R); None: as fast as it can
    storm_findings: int = 100_000  # findings of one run in the event storm (bench/storm.py)
    storm_reps: int = 3
    notify_latency_reps: int = 50  # detections timed from commit to the receiver (bench/notify.py)
    notify_deliveries: int = 5_000  # deliveries one worker drains for the throughput figure
    notify_storm: int = 10_000  # events opened by one run for the notification storm
    stream_events: tuple = (100_000, 1_000_000)  # events listed for the streaming-memory figure
    serve_active: int = 10_000  # of those, the active ones for the server's figure


SCALES: dict[str, Scale] = {s.name: s for s in (
    Scale("tiny", 100, 500, 500, anomalies=3),
    Scale("small", 1_000, 5_000, 5_000, anomalies=3, ref="tiny", delta_transactions=500, delta_scans=500,
          reps=3, full_reps=2, pgbench_seconds=3, pgbench_rounds=3, pgbench_clients=2, storm_findings=2_000,
          storm_reps=2, notify_latency_reps=5, notify_deliveries=200, notify_storm=300,
          stream_events=(1_000, 2_000), serve_active=100),
    Scale("100k", 10_000, 100_000, 100_000),
    Scale("1m", 100_000, 1_000_000, 1_000_000, ref="100k"),
    Scale("10m", 1_000_000, 10_000_000, 10_000_000, ref="1m"),
    Scale("50m", 5_000_000, 50_000_000, 50_000_000, ref="1m"),
)}
DEFAULT_SCALE = "10m"
CHOICES = ["small", "1m", "10m", "50m"]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sql_blocks(filename: str, marker: str) -> list[tuple[str, str]]:
    """The `-- <marker>: NAME` blocks of a file in bench/, in order: [(name, sql)]."""
    text = (BENCH_DIR / filename).read_text()
    blocks: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(rf"^--\s*{marker}:\s*(\S+)", line)
        if m:
            blocks.append((m.group(1), ""))
        elif blocks:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + line + "\n")
    return [(name, body.strip()) for name, body in blocks]


def sql_file(filename: str) -> str:
    return (BENCH_DIR / filename).read_text()


def timed(conn: psycopg.Connection, query: str, params=None) -> tuple[float, list]:
    """Run a query; (milliseconds, rows)."""
    t0 = time.perf_counter()
    cur = conn.execute(query, params)
    rows = cur.fetchall() if cur.description else []
    return (time.perf_counter() - t0) * 1000.0, rows


def summary(values: list[float]) -> dict:
    """min / median / all of a list of timings (milliseconds), rounded."""
    if not values:
        return {"min": None, "median": None, "all": []}
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2),
            "all": [round(v, 2) for v in values]}


def ratio(a, b) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def connect(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True, application_name="monitorctl-bench")
    conn.execute("SET statement_timeout = 0")
    return conn
