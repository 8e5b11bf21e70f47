"""The server (docs/benchmarks.md): a /metrics scrape and the overview page over events of months,
mostly resolved, each against one `select count(*)` of the active events. The server runs in this
process (uvicorn in a thread) with its metrics cache off, so every scrape reads the database."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request

import uvicorn

from monitorctl.server.app import create_app

from .common import connect, say, sql_blocks, timed

QUERIES = dict(sql_blocks("stream.sql", "query"))
REPS = 20


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_ms(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        r.read()
    return (time.perf_counter() - t0) * 1000.0


def serve(dsn: str, active: int) -> dict:
    with connect(dsn) as conn:
        conn.execute(QUERIES["keep_active"], {"active": active})
        conn.execute("VACUUM ANALYZE monitor.events")
        events = conn.execute("select count(*) from monitor.events").fetchone()[0]
        floor = [timed(conn, QUERIES["active_floor"])[0] for _ in range(REPS)]
        n_active = conn.execute(QUERIES["active_floor"]).fetchone()[0]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(dsn, cache_seconds=0.0), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        base = f"http://127.0.0.1:{port}"
        fetch_ms(base + "/metrics"), fetch_ms(base + "/")  # warm: first connection, templates
        metrics = [fetch_ms(base + "/metrics") for _ in range(REPS)]
        overview = [fetch_ms(base + "/") for _ in range(REPS)]
    finally:
        server.should_exit = True
        thread.join(10)
    out = {"events": events, "active": n_active,
           "metrics_ms": round(statistics.median(metrics), 2), "overview_ms": round(statistics.median(overview), 2),
           "floor_ms": round(statistics.median(floor), 2)}
    out["metrics_ratio"] = round(out["metrics_ms"] / out["floor_ms"], 2) if out["floor_ms"] else None
    out["overview_ratio"] = round(out["overview_ms"] / out["floor_ms"], 2) if out["floor_ms"] else None
    say(f"  serve: /metrics {out['metrics_ms']} ms, overview {out['overview_ms']} ms (median), "
        f"count of the active events {out['floor_ms']} ms; {events:,} events, {n_active:,} active")
    return out
