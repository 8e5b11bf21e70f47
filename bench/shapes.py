"""The example ledger shapes (docs/examples/, tests/shapes/) at two sizes: is a run O(new rows)?

For each shape (a double-entry ledger with state in appended rows, an entry-per-movement ledger, a
payments table with a balances table) and each size: build the clean ledger, install its example
mapping, create the indexes `monitorctl doctor` asks for, run every detector once (the first run:
a full pass over the last 24 hours), then add the shape's injected anomalies (a few dozen rows) and
time each detector's next run, which reads only what is new. The ratio of that cycle at the larger
size to the smaller is the figure: 1 when a run's cost follows the new rows, not the table. The
double-entry ledger is measured mapped as its example is (answers with `at`) and without `at`.

    python -m bench.shapes [--rows 100000,1000000] [--reps 3] [--only double_entry,entries,...]

Results: a table on stdout, JSON in bench/results/shapes.json (docs/benchmarks.md, "Ledger shapes").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tomllib
from pathlib import Path

import psycopg

from monitorctl import embedded, mapping
from monitorctl.install import install

from .common import BENCH_DIR, say
from .mapped import doctor

ROOT = BENCH_DIR.parent
SHAPES = {"double_entry": "double-entry.toml", "entries": "entries.toml", "payments": "payments.toml"}
# the double-entry ledger mapped without `at` too: answers assumed within late_window, runs read by created_at
VARIANTS = {"double_entry": "double_entry", "double_entry_no_at": "double_entry", "entries": "entries",
            "payments": "payments"}


def config_of(variant: str) -> dict:
    shape = VARIANTS[variant]
    text = (ROOT / "docs" / "examples" / SHAPES[shape]).read_text()
    if variant.endswith("_no_at"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith("at = "))
    cfg = tomllib.loads(text)
    mapping.check_shape(cfg)
    return cfg


def shape_sql(shape: str, part: str, rows: int) -> str:
    return ((ROOT / "tests" / "shapes" / f"{shape}.{part}.sql").read_text()
            .replace("{rows}", str(rows)).replace("{accounts}", str(max(20, rows // 50))))


def doctor_indexes(dsn: str) -> list[str]:
    """Create what `monitorctl doctor` asks for; the statements."""
    made = [a["suggestion"] for a in doctor(dsn) if a["status"] == "missing"]
    with psycopg.connect(dsn, autocommit=True) as c:
        for statement in made:
            c.execute(statement)
        c.execute("analyze")
    return made


def run_all(c) -> dict[str, float]:
    """Every enabled detector once, detector_health last: {detector: ms}."""
    names = [r[0] for r in c.execute("select name from monitor.detectors where enabled "
                                     "order by name = 'detector_health', name")]
    out = {}
    for name in names:
        t = time.perf_counter()
        c.execute("select monitor.run_detector(%s)", (name,))
        out[name] = (time.perf_counter() - t) * 1000
    failed = c.execute("select detector, error from monitor.detector_runs where status <> 'ok'").fetchall()
    if failed:
        raise RuntimeError(f"runs failed: {failed}")
    return out


def measure(server, variant: str, rows: int, reps: int) -> dict:
    shape = VARIANTS[variant]
    dsn = server.create_database(f"shape_{variant}_{rows}")
    with psycopg.connect(dsn, autocommit=True) as c:
        t = time.perf_counter()
        with c.transaction():
            c.execute(shape_sql(shape, "schema", rows))
            c.execute(shape_sql(shape, "build", rows))
        build_s = time.perf_counter() - t
        c.execute("vacuum analyze")
    install(dsn, config=config_of(variant), do_schedule=False)
    indexes = doctor_indexes(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        first = run_all(c)
        events_clean = c.execute("select count(*) from monitor.events").fetchone()[0]
        with c.transaction():
            c.execute(shape_sql(shape, "inject", rows))
        cycles = [run_all(c)]
        for _ in range(reps - 1):  # nothing new: the idle cycle
            cycles.append(run_all(c))
        events = c.execute("select count(*) from monitor.events").fetchone()[0]
    server.drop_database(f"shape_{variant}_{rows}")
    return {"rows": rows, "build_s": round(build_s, 1), "indexes": indexes, "events_clean": events_clean,
            "events_after_inject": events, "first_run_ms": {k: round(v, 1) for k, v in first.items()},
            "first_run_total_ms": round(sum(first.values()), 1),
            "new_rows_cycle_ms": {k: round(v, 1) for k, v in cycles[0].items()},
            "new_rows_cycle_total_ms": round(sum(cycles[0].values()), 1),
            "idle_cycle_total_ms": round(statistics.median(sum(c.values()) for c in cycles[1:]), 1)
            if len(cycles) > 1 else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="100000,1000000", help="two sizes, comma-separated")
    ap.add_argument("--reps", type=int, default=3, help="cycles after the injection (the first reads the new rows)")
    ap.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = ap.parse_args()
    small, large = (int(x) for x in args.rows.split(","))
    server = embedded.start(progress=say)
    result: dict = {}
    try:
        for variant in args.only.split(","):
            result[variant] = {}
            for rows in (small, large):
                say(f"{variant} at {rows:,} rows")
                result[variant][str(rows)] = measure(server, variant, rows, args.reps)
    finally:
        server.stop()
    out = Path(BENCH_DIR / "results" / "shapes.json")
    out.parent.mkdir(exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps(previous | result, indent=2) + "\n")
    print(f"{'shape':<20}{'rows':>10}{'first run':>12}{'new-rows cycle':>16}{'idle cycle':>12}  events")
    for shape, sizes in result.items():
        for rows, r in sizes.items():
            print(f"{shape:<20}{int(rows):>10,}{r['first_run_total_ms']:>10.0f}ms{r['new_rows_cycle_total_ms']:>14.0f}ms"
                  f"{(r['idle_cycle_total_ms'] or 0):>10.0f}ms  {r['events_clean']} clean, {r['events_after_inject']} after")
        a, b = sizes[str(small)], sizes[str(large)]
        print(f"{'':<20}{'ratio':>10}{b['first_run_total_ms'] / a['first_run_total_ms']:>11.2f}x"
              f"{b['new_rows_cycle_total_ms'] / a['new_rows_cycle_total_ms']:>15.2f}x"
              f"{(b['idle_cycle_total_ms'] or 0) / max(a['idle_cycle_total_ms'] or 1, 1e-9):>11.2f}x")


if __name__ == "__main__":
    main()
