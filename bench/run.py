"""The benchmark: one command, one server, one table and one JSON file.

    .venv/bin/python -m bench.run [--scale small|1m|10m|50m] [--out FILE] [--dsn DSN]

Starts a throwaway PostgreSQL (monitorctl.embedded) unless --dsn names a server (a superuser
connection; the benchmark creates and drops its own databases there). Then, on that server:
generates the reference ledger at the chosen scale and at the smaller comparison scale, installs
monitorctl in each, and measures the steady-state cycle, size independence, the full
reconciliation, the naive baseline and the write overhead under pgbench (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

import psycopg  # noqa: E402

from monitorctl import embedded  # noqa: E402
from monitorctl.install import install  # noqa: E402

from . import mapped, measure, notify, report, serve, storm, stream, writeload  # noqa: E402
from .common import CHOICES, DEFAULT_SCALE, SCALES, connect, say  # noqa: E402

SETTINGS = ("shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size", "max_connections",
            "max_parallel_workers_per_gather", "max_worker_processes", "jit", "fsync", "synchronous_commit",
            "full_page_writes", "random_page_cost", "autovacuum", "cron.max_running_jobs",
            "cron.use_background_workers", "cron.database_name")


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def default_shared_buffers() -> str:
    """A quarter of the machine's memory, at most 8GB: PostgreSQL's usual advice for a dedicated
    server, so that the benchmark measures detection rather than an undersized buffer cache."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{min(int(line.split()[1]) // 4 // 1024, 8192)}MB"
    except OSError:
        pass
    return "1GB"


def server_meta(conn: psycopg.Connection) -> dict:
    version = conn.execute("show server_version").fetchone()[0]
    settings = {r[0]: r[1] for r in conn.execute(
        "select name, current_setting(name) from pg_settings where name = any(%s) order by name", (list(SETTINGS),))}
    cron = conn.execute("select extversion from pg_extension where extname = 'pg_cron'").fetchone()
    return {"postgres": version, "pg_cron": cron[0] if cron else None, "settings": settings}


def prepare_database(server: embedded.Server, name: str, scale_name: str,
                     extra_sql: list[str] = ()) -> tuple[str, dict]:
    """A fresh database with monitorctl and the reference ledger, filled at the scale."""
    scale = SCALES[scale_name]
    dsn = server.create_database(name)
    install(dsn, with_ledger=True, do_schedule=False)
    with connect(dsn) as conn:
        for path in extra_sql:  # a candidate index or detector change, tried without touching sql/
            conn.execute(Path(path).read_text())
    say(f"generating {name}: {scale.accounts:,} accounts, {scale.transactions:,} transactions,"
        f" {scale.scans:,} scans")
    with connect(dsn) as conn:
        gen = measure.generate(conn, scale)
    say(f"generated {name} in {gen['seconds']:.1f} s")
    return dsn, gen


def run(args) -> dict:
    scale = SCALES[args.scale]
    ref_scale = SCALES[scale.ref]
    if args.reps:
        scale = dataclasses.replace(scale, reps=args.reps)
    if args.pgbench_seconds:
        scale = dataclasses.replace(scale, pgbench_seconds=args.pgbench_seconds)
    if args.pgbench_rounds:
        scale = dataclasses.replace(scale, pgbench_rounds=args.pgbench_rounds)
    if args.pgbench_rate:
        scale = dataclasses.replace(scale, pgbench_rate=args.pgbench_rate)
    started = time.perf_counter()
    result: dict = {"meta": {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                             "scale": dataclasses.asdict(scale), "ref_scale": dataclasses.asdict(ref_scale),
                             "extra_sql": list(args.extra_sql),
                             "machine": machine()}}
    # the mapped figure runs with PostgreSQL's default shared_buffers, where a table scan shows
    buffers = args.shared_buffers or ("128MB" if args.mapped_only else default_shared_buffers())
    server = embedded.external(args.dsn) if args.dsn else embedded.start(say, settings={"shared_buffers": buffers})
    try:
        with psycopg.connect(server.dsn(embedded.dsn_dbname(args.dsn) if args.dsn else "postgres"),
                             autocommit=True) as conn:
            result["meta"]["server"] = server_meta(conn)
        names = {"ref": f"bench_{ref_scale.name}", "main": f"bench_{scale.name}"}
        if args.mapped_only:
            dsns = {key: prepare_database(server, names[key], ref_scale.name if key == "ref" else scale.name,
                                          args.extra_sql)[0] for key in ("ref", "main")}
            say(f"mapped ledgers with doctor's indexes, shared_buffers {buffers}: idle and steady cycles")
            result["mapped"] = mapped.mapped(dsns, scale)
        else:
            if args.storm_only:
                names = {}
            else:
                run_read_and_write_sides(args, server, result, names, scale, ref_scale)
            say(f"event storm: {scale.storm_findings:,} findings at once, {scale.storm_reps} times")
            names["storm"] = "bench_storm"
            storm_dsn = server.create_database(names["storm"])
            install(storm_dsn, with_ledger=True, do_schedule=False)
            with connect(storm_dsn) as conn:
                result["storm"] = storm.storm(conn, scale.storm_findings, scale.storm_reps)
            say(f"notifications: latency over {scale.notify_latency_reps} detections, {scale.notify_deliveries:,}"
                f" deliveries, a storm of {scale.notify_storm:,} events")
            names["notify"] = "bench_notify"
            notify_dsn = server.create_database(names["notify"])
            install(notify_dsn, with_ledger=True, do_schedule=False)
            result["notify"] = notify.notify(notify_dsn, scale.notify_latency_reps, scale.notify_deliveries,
                                             scale.notify_storm)
            say(f"listing events: peak memory of `monitorctl events` at {', '.join(f'{n:,}' for n in scale.stream_events)}"
                " events")
            names["stream"] = "bench_stream"
            stream_dsn = server.create_database(names["stream"])
            install(stream_dsn, with_ledger=True, do_schedule=False)
            result["stream"] = stream.stream(stream_dsn, list(scale.stream_events))
            say(f"the server: /metrics and the overview with {max(scale.stream_events):,} events,"
                f" {scale.serve_active:,} active")
            result["serve"] = serve.serve(stream_dsn, scale.serve_active)
            server.drop_database(names.pop("stream"))
        if server.backend == "external" and not args.keep:
            for name in names.values():
                server.drop_database(name)
    finally:
        server.stop()  # a throwaway server is removed; an external one is left running
    result["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    result["meta"]["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report.derive(result)
    result["goals"] = report.goals(result)
    result["missing_figures"] = report.missing_figures(
        result, only=("storm.", "notify.", "stream.", "serve.") if args.storm_only else "mapped." if args.mapped_only else None)
    return result


def run_read_and_write_sides(args, server, result: dict, names: dict, scale, ref_scale) -> None:
    """The ledgers at two sizes: the read side (cycles, full pass, naive baseline), then pgbench."""
    dsns: dict[str, str] = {}
    result["generation"] = {}
    for key in ("ref", "main"):
        dsns[key], result["generation"][key] = prepare_database(
            server, names[key], ref_scale.name if key == "ref" else scale.name, args.extra_sql)
    conns = {key: connect(dsn) for key, dsn in dsns.items()}
    try:
        measure_read_side(result, conns, scale)
    finally:
        for c in conns.values():
            c.close()
    if args.skip_write:
        result["write_overhead"] = {"error": "skipped (--skip-write)"}
    else:
        say(f"write overhead: pgbench {scale.pgbench_rounds} x (without, with detection),"
            f" {scale.pgbench_seconds} s each")
        try:
            result["write_overhead"] = writeload.write_overhead(server, dsns["main"], scale, args.extra_sql)
        except Exception as exc:  # reported, not fatal: the other figures stand
            result["write_overhead"] = {"error": str(exc)}


def measure_read_side(result: dict, conns: dict, scale) -> None:
    result["first_run"] = {}
    states = {}
    for key, conn in conns.items():
        say(f"{key}: refresh, first run and an idle cycle")
        fr = measure.first_run(conn)
        states[key] = {"hour": fr.pop("hour")}
        result["first_run"][key] = fr
        if fr["first"]["errors"]:
            say(f"  {key}: detectors in error: " + "; ".join(f"{k}: {v}" for k, v in fr["first"]["errors"].items()))
    detectors = {key: measure.enabled_detectors(conn) for key, conn in conns.items()}
    say(f"steady state: {scale.reps} cycles on each ledger, interleaved")
    cycles: dict[str, list] = {"main": [], "ref": []}
    catchups = 0
    for rep in range(scale.reps):
        for key in ("ref", "main"):
            catchups += measure.keep_current(conns[key], states[key])
            c = measure.steady_cycle(conns[key], detectors[key], scale)
            cycles[key].append(c)
            say(f"  {key} cycle {rep + 1}: {c['cycle_ms']:.1f} ms, floor {c['floor_ms']:.1f} ms"
                + (f", errors in {', '.join(c['errors'])}" if c["errors"] else ""))
    result["steady_state"] = {key: measure.summarise_cycles(v) for key, v in cycles.items()}
    sustained_reps = max(2, scale.reps // 2)
    say(f"sustained stream: {sustained_reps} cycles after {measure.SUSTAINED_MINUTES} minutes of traffic at"
        f" {scale.delta_transactions:,}+{scale.delta_scans:,} per minute")
    sustained = []
    for rep in range(sustained_reps):
        catchups += measure.keep_current(conns["main"], states["main"])
        c = measure.steady_cycle(conns["main"], detectors["main"], scale, sustained=True)
        sustained.append(c)
        say(f"  sustained cycle {rep + 1}: {c['cycle_ms']:.1f} ms, late-window floor {c['floor_window_ms']:.1f} ms")
    result["steady_state"]["main"]["sustained"] = measure.summarise_sustained(sustained)
    result["steady_state"]["hourly_catchup_cycles"] = catchups
    say(f"full reconciliation: {scale.full_reps} passes against the group-by floor")
    result["full_reconciliation"] = measure.full_reconciliation(conns["main"], scale.full_reps)
    say("naive baseline: every rule once over the whole ledger")
    result["naive"] = measure.naive(conns["main"])
    say("backfill: `run --since 30d`, each finding detector a day at a time")
    result["backfill"] = measure.backfill(conns["main"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=CHOICES, default=DEFAULT_SCALE,
                    help="ledger size: small (CI smoke), 1m, 10m (default), 50m transactions")
    ap.add_argument("--out", help="JSON result file (default bench/results/<scale>-<time>.json)")
    ap.add_argument("--dsn", help="superuser connection to an existing server (default: a throwaway local one)")
    ap.add_argument("--reps", type=int, help="steady-state cycles per ledger (default per scale)")
    ap.add_argument("--pgbench-seconds", type=int, help="seconds per pgbench run (default per scale)")
    ap.add_argument("--pgbench-rounds", type=int, help="rounds of (without, with detection) runs (default 3)")
    ap.add_argument("--pgbench-rate", type=int, metavar="TPS",
                    help="run pgbench at this many payments a second (pgbench -R) instead of flat out")
    ap.add_argument("--skip-write", action="store_true", help="skip the pgbench write-overhead runs")
    ap.add_argument("--storm-only", action="store_true", help="measure only the event storm, the notifications and"
                    " the listing of events"
                    " (minutes, not the whole run); other figures are then reported missing")
    ap.add_argument("--mapped-only", action="store_true",
                    help="measure only the mapped ledger with doctor's indexes (idle and steady cycles at two"
                         " sizes, shared_buffers 128MB unless --shared-buffers); other figures are then missing")
    ap.add_argument("--shared-buffers", metavar="SIZE",
                    help="shared_buffers of the throwaway server (default: a quarter of memory, at most 8GB;"
                         " 128MB with --mapped-only)")
    ap.add_argument("--keep", action="store_true", help="on an external server: keep the benchmark databases")
    ap.add_argument("--extra-sql", action="append", default=[], metavar="FILE",
                    help="SQL file applied after install in each benchmark database (repeatable), to try an"
                         " index or a detector change")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else (
        Path(__file__).resolve().parent / "results" / f"{args.scale}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    result = run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report.mapped_table(result) if args.mapped_only else report.table(result))
    say(f"results written to {out} ({result['meta']['seconds']:.0f} s in all)")
    if result["missing_figures"]:
        say("figures missing: " + ", ".join(result["missing_figures"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
