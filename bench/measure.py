"""Generation and the read-side measurements: first run, steady-state cycle, full reconciliation,
naive baseline. Every function takes an autocommit connection to one benchmark database."""

from __future__ import annotations

import datetime as dt
import math
import time

import psycopg

from .common import Scale, say, sql_blocks, sql_file, summary, timed

DELTA_WINDOW = "60 seconds"  # the new rows of a cycle were created in the minute before it


# -- generation -----------------------------------------------------------------------------------

def generate(conn: psycopg.Connection, scale: Scale) -> dict:
    """Fill the reference ledger at `scale`; seconds per step and the row counts."""
    for key, value in (("bench.accounts", scale.accounts), ("bench.transactions", scale.transactions),
                       ("bench.scans", scale.scans), ("bench.days", scale.days),
                       ("bench.anomalies", scale.anomalies)):
        conn.execute("select set_config(%s, %s, false)", (key, str(value)))
    conn.execute("SET work_mem = '1GB'")
    conn.execute("SET maintenance_work_mem = '1GB'")
    steps: dict[str, float] = {}
    t_all = time.perf_counter()
    for name, body in sql_blocks("generate.sql", "step"):
        t0 = time.perf_counter()
        conn.execute(body)
        steps[name] = round(time.perf_counter() - t0, 2)
        say(f"  {scale.name}: {name} {steps[name]:.1f} s")
    total = round(time.perf_counter() - t_all, 2)
    conn.execute("RESET work_mem")
    conn.execute("RESET maintenance_work_mem")
    rows = conn.execute(
        "select (select count(*) from ledger.accounts), (select count(*) from ledger.transactions),"
        " (select count(*) from ledger.scans), (select count(*) from ledger.accounts where balance < 0),"
        " pg_total_relation_size('ledger.transactions'), pg_total_relation_size('ledger.scans')").fetchone()
    return {"seconds": total, "steps_s": steps,
            "rows": {"accounts": rows[0], "transactions": rows[1], "scans": rows[2]},
            "negative_balances": rows[3],
            "size_mb": {"transactions": round(rows[4] / 2**20), "scans": round(rows[5] / 2**20)}}


def set_delta(conn: psycopg.Connection, transactions: int, scans: int, window: str = DELTA_WINDOW,
              offset: str = "0 seconds") -> None:
    conn.execute("select set_config('bench.delta_offset', %s, false)", (offset,))
    conn.execute("select set_config('bench.delta_transactions', %s, false)", (str(transactions),))
    conn.execute("select set_config('bench.delta_scans', %s, false)", (str(scans),))
    conn.execute("select set_config('bench.delta_window', %s, false)", (window,))


# -- detector runs --------------------------------------------------------------------------------

def enabled_detectors(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("select name from monitor.detectors where enabled order by name")]


def run_errors(conn: psycopg.Connection, since) -> dict[str, str]:
    """Detector runs that ended in error since `since`: {detector: error}."""
    return {r[0]: r[1] for r in conn.execute(
        "select detector, error from monitor.detector_runs where status = 'error' and started_at >= %s"
        " order by started_at", (since,))}


def committed_cycle(conn: psycopg.Connection) -> dict:
    """CALL monitor.run_all(), as pg_cron would run it: time, events opened per detector, errors."""
    t0 = conn.execute("select clock_timestamp()").fetchone()[0]
    ms, _ = timed(conn, "CALL monitor.run_all()")
    opened = {r[0]: r[1] for r in conn.execute(
        "select detector, sum(events_opened)::int from monitor.detector_runs where started_at >= %s"
        " group by detector order by detector", (t0,))}
    return {"ms": round(ms, 2), "events_opened": opened, "errors": run_errors(conn, t0)}


def refresh(conn: psycopg.Connection) -> dict:
    """monitor.refresh() (the hourly materialized-view refresh)."""
    try:
        ms, _ = timed(conn, "select monitor.refresh()")
        return {"ms": round(ms, 2), "error": None}
    except psycopg.Error as exc:
        return {"ms": None, "error": str(exc).splitlines()[0]}


def first_run(conn: psycopg.Connection) -> dict:
    """Refresh, first cycle (24 h lookback, full balance pass), then an idle cycle."""
    out = {"refresh": refresh(conn)}
    out["first"] = committed_cycle(conn)
    out["idle"] = committed_cycle(conn)
    out["hour"] = conn.execute("select date_trunc('hour', now())").fetchone()[0]
    return out


# -- steady state ---------------------------------------------------------------------------------

def vacuum(conn: psycopg.Connection) -> None:
    """Clear what a rolled-back cycle left behind, index entries included (VACUUM skips index
    cleanup for so few dead rows by default), so every repetition reads the same indexes."""
    conn.execute("VACUUM (INDEX_CLEANUP ON) ledger.transactions, ledger.scans, ledger.accounts")
    conn.execute("VACUUM monitor.account_totals, monitor.events, monitor.alert_history, monitor.detector_runs,"
                 " monitor.watermarks")


def keep_current(conn: psycopg.Connection, state: dict) -> bool:
    """Run a committed idle cycle when the hour changed since the last one, so that no measured
    cycle includes the hourly baseline refresh. True when it ran."""
    hour = conn.execute("select date_trunc('hour', now())").fetchone()[0]
    if hour == state.get("hour"):
        return False
    committed_cycle(conn)
    state["hour"] = hour
    return True


SUSTAINED_MINUTES = 6  # the late window (5 minutes) plus the new minute

def cycle_query(name: str) -> str:
    return dict(sql_blocks("cycle.sql", "query"))[name]


def steady_cycle(conn: psycopg.Connection, detectors: list[str], scale: Scale, sustained: bool = False) -> dict:
    """One Δ and one detection cycle over it, in a transaction that is rolled back afterwards so
    every repetition starts from the same state. The Δ insert is not timed. The floor is one plain
    pass over the Δ window (the last minute) of each source.

    sustained: the ledger as it is under a steady stream of Δ per minute with a cycle every minute:
    every watermark is moved so that the previous run was a minute ago, and SUSTAINED_MINUTES
    minutes of traffic at Δ per minute are inserted, the newest minute after the previous cycle's
    snapshot. The cycle then scans the late window (skipping the rows the previous cycle saw) and
    folds the minute of rows that crossed the balance horizon, as it would in production."""
    out: dict = {}
    with conn.transaction():
        if sustained:
            conn.execute(cycle_query("previous_run_a_minute_ago"))
            earlier = SUSTAINED_MINUTES - 1
            with conn.transaction():  # the minutes before the previous cycle, which it saw
                set_delta(conn, scale.delta_transactions * earlier, scale.delta_scans * earlier,
                          f"{earlier} minutes", offset=DELTA_WINDOW)
                conn.execute(sql_file("delta.sql"))
            with conn.transaction():  # the newest minute, written after the previous cycle's snapshot
                set_delta(conn, scale.delta_transactions, scale.delta_scans)
                conn.execute(sql_file("delta.sql"))
                conn.execute(cycle_query("seen_by_previous_cycle"))
        else:
            set_delta(conn, scale.delta_transactions, scale.delta_scans)
            conn.execute(sql_file("delta.sql"))
        delta = {"window": DELTA_WINDOW}
        out["floor_transactions_ms"], rows = timed(conn, cycle_query("floor_transactions"), delta)
        out["delta_transactions"] = rows[0][0]
        out["floor_scans_ms"], rows = timed(conn, cycle_query("floor_scans"), delta)
        out["delta_scans"] = rows[0][0]
        per: dict[str, float] = {}
        for name in detectors:
            per[name], _ = timed(conn, "select monitor.run_detector(%s)", (name,))
        out["per_detector_ms"] = per
        out["cycle_ms"] = sum(per.values())
        out["floor_ms"] = out["floor_transactions_ms"] + out["floor_scans_ms"]
        out["keyed_read_ms"], _ = timed(conn, cycle_query("keyed_read"), delta)  # for the explanation
        if sustained:  # one plain pass over everything the late window holds, for comparison
            window = {"window": f"{SUSTAINED_MINUTES} minutes"}
            out["floor_window_ms"] = (timed(conn, cycle_query("floor_transactions"), window)[0]
                                      + timed(conn, cycle_query("floor_scans"), window)[0])
        out["events_opened"] = conn.execute(cycle_query("events_opened")).fetchone()[0]
        out["errors"] = run_errors(conn, conn.execute("select now()").fetchone()[0])
        raise psycopg.Rollback()
    vacuum(conn)
    return out


def per_detector_median(cycles: list[dict]) -> dict[str, float]:
    names = cycles[0]["per_detector_ms"].keys() if cycles else []
    return {n: summary([c["per_detector_ms"][n] for c in cycles])["median"] for n in names}


def all_errors(cycles: list[dict]) -> dict[str, str]:
    errors: dict[str, str] = {}
    for c in cycles:
        errors.update(c["errors"])
    return errors


def summarise_sustained(cycles: list[dict]) -> dict:
    return {
        "minutes": SUSTAINED_MINUTES,
        "cycle_ms": summary([c["cycle_ms"] for c in cycles]),
        "floor_window_ms": summary([c["floor_window_ms"] for c in cycles]),
        "per_detector_ms": per_detector_median(cycles),
        "errors": all_errors(cycles),
    }


def summarise_cycles(cycles: list[dict]) -> dict:
    names = cycles[0]["per_detector_ms"].keys() if cycles else []
    return {
        "cycle_ms": summary([c["cycle_ms"] for c in cycles]),
        "floor_ms": summary([c["floor_ms"] for c in cycles]),
        "floor_transactions_ms": summary([c["floor_transactions_ms"] for c in cycles]),
        "floor_scans_ms": summary([c["floor_scans_ms"] for c in cycles]),
        "keyed_read_ms": summary([c["keyed_read_ms"] for c in cycles]),
        "per_detector_ms": per_detector_median(cycles),
        "per_detector_max_ms": {n: max(c["per_detector_ms"][n] for c in cycles) for n in names},
        "delta_rows": {"transactions": cycles[0]["delta_transactions"], "scans": cycles[0]["delta_scans"]}
        if cycles else {},
        "events_opened_per_cycle": max((c["events_opened"] for c in cycles), default=0),
        "errors": all_errors(cycles),
    }


# -- full reconciliation --------------------------------------------------------------------------

FULL_FLOOR = ("select count(*), sum(total) from"
              " (select account_id, sum(amount) as total from ledger.transactions group by account_id) x")


def full_reconciliation(conn: psycopg.Connection, reps: int) -> dict:
    """The periodic full balance pass (balance_mismatch with full_pass = 0) against a plain
    group-by over all transactions, alternated; each pass rolled back."""
    passes, floors, serial, errors = [], [], [], {}
    for _ in range(reps):
        with conn.transaction():
            conn.execute("""select monitor.set_params('balance_mismatch', '{"full_pass": "0 seconds"}')""")
            ms, _ = timed(conn, "select monitor.run_detector('balance_mismatch')")
            passes.append(ms)
            errors.update(run_errors(conn, conn.execute("select now()").fetchone()[0]))
            raise psycopg.Rollback()
        floor_ms, _ = timed(conn, FULL_FLOOR)
        floors.append(floor_ms)
        with conn.transaction():  # the same floor without parallel workers, for the explanation
            conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            serial.append(timed(conn, FULL_FLOOR)[0])
    vacuum(conn)
    return {"pass_ms": summary(passes), "floor_ms": summary(floors), "floor_serial_ms": summary(serial),
            "errors": errors}


# -- naive baseline -------------------------------------------------------------------------------

def naive(conn: psycopg.Connection) -> dict:
    """Each naive rule once: seconds and the number of findings."""
    rules: dict[str, dict] = {}
    for name, body in sql_blocks("naive.sql", "name"):
        ms, rows = timed(conn, f"select count(*) from ({body}) x")
        rules[name] = {"s": round(ms / 1000, 3), "findings": rows[0][0]}
        say(f"  naive {name}: {ms / 1000:.1f} s")
    return {"total_s": round(sum(r["s"] for r in rules.values()), 3), "rules": rules}


# -- backfill -------------------------------------------------------------------------------------

FINDING_DETECTORS = ("failed_debit", "consecutive_failures", "duplicate_scan", "concurrent_txn")


def backfill(conn: psycopg.Connection, days: int = 30, slice_hours: int = 24) -> dict:
    """`monitorctl run --since {days}d` as the CLI runs it: each finding detector over the whole window,
    a slice at a time, oldest first, each slice a run in its own transaction under the default timeout."""
    now = conn.execute("select now()").fetchone()[0]
    start = now - dt.timedelta(days=days)
    step = dt.timedelta(hours=slice_hours)
    bounds = [start + k * step for k in range(math.ceil((now - start) / step))]  # the last slice runs to now
    slices = list(zip(bounds, bounds[1:] + [None]))
    seconds, errors = {}, {}
    for name in FINDING_DETECTORS:
        total = 0.0
        for since, until in slices:
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = '50s'")
                ms, _ = timed(conn, "select monitor.run_detector(%s, %s, %s)", (name, since, until))
            total += ms
            status, error = conn.execute("select status, error from monitor.detector_runs where detector = %s"
                                         " order by run_id desc limit 1", (name,)).fetchone()
            if status == "error":
                errors[name] = error
        seconds[name] = round(total / 1000, 3)
        say(f"  backfill {name}: {total / 1000:.1f} s in {len(slices)} slices")
    return {"days": days, "slice_hours": slice_hours, "slices": len(slices), "detectors_s": seconds,
            "total_s": round(sum(seconds.values()), 3), "errors": errors}
