"""Single node against a Citus cluster on the same machine (docs/scaling.md, "What was measured").

    .venv/bin/python -m bench.citus [--scale small|1m|10m] [--out FILE]

Starts two throwaway deployments side by side: one PostgreSQL, and a Citus cluster of three local
servers (a coordinator with pg_cron, two workers). Each gets the same generated reference ledger
(bench/generate.sql, seeded): generated on the single node as it is; on the cluster generated on the
coordinator, then distributed by account (`install --with-ledger --distributed`, timed). On both it
measures, as ratios to a floor measured on the same deployment in the same run:

* the steady-state cycle (every enabled detector over a fresh minute of traffic) against a plain
  pass over that minute's rows;
* the sustained cycle (a minute of traffic after five the previous cycle saw, all in the late window)
  against the steady one: on one server the rows already seen are skipped; on the cluster, where a
  row's xmin is a worker's, they are read again (docs/scaling.md, "The late-window skip");
* the full reconciliation (balance_mismatch recomputing every account) against a plain group-by of
  all transactions per account;
* the events of the first run, which must be the same on both.

On one 2-core machine the cluster cannot be faster (three servers share two cores, and every
distributed statement pays a round of planning and connections): what must hold is that its cycle
stays a small multiple of its own floor, so that it is O(new rows), with the work on the shards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from monitorctl import embedded  # noqa: E402
from monitorctl.install import install  # noqa: E402

from . import measure  # noqa: E402
from .common import SCALES, connect, ratio, say, timed  # noqa: E402

# the same memory in all: the single server gets what the cluster's three servers get together
SETTINGS = {"work_mem": "64MB", "max_parallel_workers_per_gather": "0"}
SHARED_BUFFERS = {"single": "6GB", "node": "2GB"}


def deployment(server: embedded.Server, scale, distributed: bool) -> dict:
    """Generate, (distribute,) run once, then the steady cycles and the full passes; one result."""
    name = "bench_citus" if distributed else "bench_single"
    dsn = server.create_database(name)
    install(dsn, with_ledger=True, do_schedule=False)
    out: dict = {}
    with connect(dsn) as conn:
        say(f"{name}: generating {scale.transactions:,} transactions")
        out["generation"] = measure.generate(conn, scale)
    if distributed:
        t0 = time.perf_counter()
        install(dsn, with_ledger=True, do_schedule=False, distributed=True)
        out["distribute_s"] = round(time.perf_counter() - t0, 1)
        say(f"{name}: distributed in {out['distribute_s']} s")
    with connect(dsn) as conn:
        if distributed:
            out["shards"] = conn.execute("select shard_count from citus_tables"
                                         " where table_name = 'ledger.transactions'::regclass").fetchone()[0]
        conn.execute("ANALYZE")
        fr = measure.first_run(conn)
        out["first_run_ms"] = fr["first"]["ms"]
        out["first_run_errors"] = fr["first"]["errors"]
        out["events"] = sorted(list(r) for r in conn.execute(
            "select detector, dedup_key, severity, subject from monitor.events order by 1, 2"))
        detectors = measure.enabled_detectors(conn)
        state = {"hour": fr["hour"]}
        cycles = []
        for rep in range(scale.reps):
            measure.keep_current(conn, state)
            c = measure.steady_cycle(conn, detectors, scale)
            cycles.append(c)
            say(f"  {name} cycle {rep + 1}: {c['cycle_ms']:.1f} ms, floor {c['floor_ms']:.1f} ms"
                + (f", errors in {', '.join(c['errors'])}" if c["errors"] else ""))
        out["steady_state"] = measure.summarise_cycles(cycles)
        # a minute of traffic after SUSTAINED_MINUTES - 1 minutes the previous cycle saw: the late window
        # holds them all; on a single node the cycle skips the seen rows, on the cluster it reads them
        sustained = []
        for rep in range(max(2, scale.reps // 2)):
            measure.keep_current(conn, state)
            c = measure.steady_cycle(conn, detectors, scale, sustained=True)
            sustained.append(c)
            say(f"  {name} sustained cycle {rep + 1}: {c['cycle_ms']:.1f} ms, late-window floor "
                f"{c['floor_window_ms']:.1f} ms")
        out["sustained"] = measure.summarise_sustained(sustained)
        say(f"{name}: full reconciliation, {scale.full_reps} passes")
        out["full_reconciliation"] = measure.full_reconciliation(conn, scale.full_reps)
        _, rows = timed(conn, "select count(*) from ledger.transactions")
        out["transactions"] = rows[0][0]
    st, full = out["steady_state"], out["full_reconciliation"]
    out["cycle_to_floor"] = ratio(st["cycle_ms"]["median"], st["floor_ms"]["median"])
    out["full_to_floor"] = ratio(full["pass_ms"]["median"], full["floor_ms"]["median"])
    out["sustained_to_steady"] = ratio(out["sustained"]["cycle_ms"]["median"], st["cycle_ms"]["median"])
    server.drop_database(name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.citus", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["small", "1m", "10m"], default="10m")
    ap.add_argument("--out", help="JSON result file (default bench/results/citus-<scale>-<time>.json)")
    args = ap.parse_args(argv)
    scale = SCALES[args.scale]
    if not embedded.citus_present():
        say("Citus is not installed for this PostgreSQL (docs/scaling.md)")
        return 2
    result: dict = {"meta": {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "scale": scale.name, "settings": SETTINGS,
                             "shared_buffers": SHARED_BUFFERS, "workers": embedded.CITUS_WORKERS}}
    started = time.perf_counter()
    for key, distributed in (("single", False), ("citus", True)):
        server = (embedded.start_citus(say, settings={**SETTINGS, "shared_buffers": SHARED_BUFFERS["node"]})
                  if distributed else
                  embedded.start_local(say, settings={**SETTINGS, "shared_buffers": SHARED_BUFFERS["single"]}))
        try:
            result[key] = deployment(server, scale, distributed)
        finally:
            server.stop()
    result["same_events"] = result["single"]["events"] == result["citus"]["events"]
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parent / "results" / f"citus-{scale.name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(result))
    say(f"results written to {out}")
    return 0 if result["same_events"] else 1


def table(result: dict) -> str:
    lines = [f"{'':28} {'single node':>14} {'Citus (1+2)':>14}"]

    def row(label, get):
        lines.append(f"{label:28} " + " ".join(f"{_fmt(get(result[k])):>14}" for k in ("single", "citus")))

    row("transactions", lambda r: r["transactions"])
    row("steady cycle ms (median)", lambda r: r["steady_state"]["cycle_ms"]["median"])
    row("  its floor ms", lambda r: r["steady_state"]["floor_ms"]["median"])
    row("  cycle / floor", lambda r: r["cycle_to_floor"])
    row("sustained cycle ms", lambda r: r["sustained"]["cycle_ms"]["median"])
    row("  sustained / steady", lambda r: r["sustained_to_steady"])
    row("full reconciliation ms", lambda r: r["full_reconciliation"]["pass_ms"]["median"])
    row("  its floor ms", lambda r: r["full_reconciliation"]["floor_ms"]["median"])
    row("  full / floor", lambda r: r["full_to_floor"])
    row("first run ms", lambda r: r["first_run_ms"])
    row("events of the first run", lambda r: len(r["events"]))
    lines.append(f"same events: {result['same_events']}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
