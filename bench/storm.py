"""The event storm (docs/benchmarks.md): N findings folded into events at once, and N open conditions
seen again, each against the plain statement that writes the same rows (bench/storm.sql).

A storm must fold within the default 50-second timeout on a 2-core machine: the runs are made with
that timeout, and an error (a timeout included) is reported with the figure.
"""

from __future__ import annotations

import psycopg

from .common import sql_blocks, summary, timed

DEFAULT_TIMEOUT = "50s"  # every detector's default `timeout`


def queries() -> dict[str, str]:
    return dict(sql_blocks("storm.sql", "query"))


def setup(conn: psycopg.Connection, findings: int) -> dict[str, str]:
    q = queries()
    for name, text in q.items():
        if name.startswith("setup_"):
            conn.execute(text.replace("{n}", str(int(findings))))
    conn.execute("VACUUM ANALYZE bench_storm.findings")
    return q


def fold(conn: psycopg.Connection, q: dict, detector: str) -> tuple[float, tuple]:
    """One run of a storm detector under the default timeout: (ms, (status, error, opened, updated))."""
    with conn.transaction():
        conn.execute(f"SET LOCAL statement_timeout = '{DEFAULT_TIMEOUT}'")
        ms, _ = timed(conn, q["fold"], (detector,))
    return ms, conn.execute(q["run_status"], (detector,)).fetchone()


def clean(conn: psycopg.Connection, q: dict, detector: str) -> None:
    conn.execute(q["forget"], (detector,))
    conn.execute(q["forget_history"], (detector,))
    conn.execute(q["truncate_copy"])
    conn.execute("VACUUM ANALYZE monitor.events, monitor.alert_history")


def storm(conn: psycopg.Connection, findings: int, reps: int) -> dict:
    q = setup(conn, findings)
    out: dict = {"findings": findings, "timeout": DEFAULT_TIMEOUT, "errors": {}}
    opened, floor_insert, resighted, floor_update = [], [], [], []
    for _ in range(reps):
        ms, (status, error, n_opened, _n) = fold(conn, q, "storm_finding")
        if status != "ok" or n_opened != findings:
            out["errors"]["fold"] = error or f"opened {n_opened} of {findings}"
        opened.append(ms)
        floor_insert.append(timed(conn, q["floor_insert"])[0])
        # the same findings as open conditions, seen again by a second run
        fold(conn, q, "storm_condition")
        ms, (status, error, _o, n_updated) = fold(conn, q, "storm_condition")
        if status != "ok" or n_updated != findings:
            out["errors"]["resight"] = error or f"updated {n_updated} of {findings}"
        resighted.append(ms)
        floor_update.append(timed(conn, q["floor_update"])[0])
        for detector in ("storm_finding", "storm_condition"):
            clean(conn, q, detector)
    out["fold_ms"] = summary(opened)
    out["floor_insert_ms"] = summary(floor_insert)
    out["resight_ms"] = summary(resighted)
    out["floor_update_ms"] = summary(floor_update)
    return out
