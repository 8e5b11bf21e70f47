"""Listing events (docs/benchmarks.md): the peak memory of `monitorctl events` writing every event in
each format, at two numbers of events. The command streams from a server-side cursor, so its peak
resident set should not grow with the number of events (goal: under 100 MB)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .common import connect, say, sql_blocks

QUERIES = dict(sql_blocks("stream.sql", "query"))
FORMATS = ("json", "csv", "table")


def peak_rss_mb(args: list[str]) -> tuple[float, float, int]:
    """Run a command with its output thrown away: (peak resident set in MB, seconds, exit code)."""
    t0 = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(proc.pid, 0)
    return round(usage.ru_maxrss / 1024, 1), round(time.perf_counter() - t0, 2), os.waitstatus_to_exitcode(status)


def stream(dsn: str, counts: list[int]) -> dict:
    out: dict = {"errors": {}, "runs": {}}
    have = 0
    for n in sorted(counts):
        with connect(dsn) as conn:
            conn.execute(QUERIES["events"], {"from": have + 1, "to": n})
            conn.execute("VACUUM ANALYZE monitor.events")
            have = conn.execute(QUERIES["count"]).fetchone()[0]
        for fmt in FORMATS:
            args = [sys.executable, "-m", "monitorctl", "--dsn", dsn, "events", "--status", "all",
                    "--limit", str(n), "--format", fmt]
            rss, seconds, code = peak_rss_mb(args)
            out["runs"][f"{n}.{fmt}"] = {"events": n, "format": fmt, "peak_rss_mb": rss, "seconds": seconds}
            if code != 0:
                out["errors"][f"{n}.{fmt}"] = f"exit {code}"
            say(f"  events --format {fmt}, {n:,} events: peak {rss} MB in {seconds} s")
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in out["runs"].values())
    out["largest"] = max(counts)
    return out
