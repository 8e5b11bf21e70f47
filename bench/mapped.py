"""A mapped ledger with only the indexes `monitorctl doctor` asks for (docs/benchmarks.md).

The generated ledger is mapped as a user's own tables would be (bench/mapped.toml: the status
through an expression, accounts without updated_at), every index but the primary keys is dropped,
and exactly the indexes `monitorctl doctor` suggests are created. Then the idle and the steady cycle
are measured at two sizes, on a server with PostgreSQL's default shared_buffers (128MB), where a
detector that reads a whole table shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from monitorctl import mapping
from monitorctl.install import install

from . import measure
from .common import BENCH_DIR, Scale, connect, say, sql_blocks, summary

IDLE_REPS = 5
QUERIES = dict(sql_blocks("mapped.sql", "query"))


def doctor(dsn: str) -> list[dict]:
    """`monitorctl doctor --format json`, the real command: its advice, one dict per index."""
    proc = subprocess.run([sys.executable, "-m", "monitorctl", "--dsn", dsn, "doctor", "--format", "json"],
                          capture_output=True, text=True, timeout=600, cwd=Path(BENCH_DIR).parent)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"monitorctl doctor failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def map_with_doctors_indexes(dsn: str) -> dict:
    """Install the mapping, drop every secondary index of the ledger, create what doctor asks for."""
    install(dsn, config=mapping.load(BENCH_DIR / "mapped.toml"), do_schedule=False)
    with connect(dsn) as conn:
        found = conn.execute(QUERIES["secondary_indexes"]).fetchall()
        for schema, name in found:
            conn.execute(sql.SQL("DROP INDEX {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
        dropped = [f"{schema}.{name}" for schema, name in found]
    advice = doctor(dsn)
    created = [a["suggestion"] for a in advice if a["status"] == "missing"]
    with connect(dsn) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        for statement in created:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE ledger.transactions, ledger.scans, ledger.accounts")
    left = [a for a in doctor(dsn) if a["status"] not in ("ok",)]
    return {"dropped": dropped, "created": created, "not_ok_after": left}


def idle_cycles(conn: psycopg.Connection, reps: int) -> dict:
    """`CALL monitor.run_all()` with nothing new, `reps` times: the cycle and each detector's time."""
    runs, per = [], []
    for _ in range(reps):
        t0 = conn.execute("select clock_timestamp()").fetchone()[0]
        runs.append(measure.committed_cycle(conn))
        per.append(dict(conn.execute(QUERIES["run_durations"], (t0,)).fetchall()))
    errors: dict = {}
    for r in runs:
        errors.update(r["errors"])
    names = per[0].keys() if per else []
    return {"ms": summary([r["ms"] for r in runs]), "errors": errors,
            "per_detector_ms": {n: summary([p.get(n, 0) for p in per])["median"] for n in names}}


def mapped(dsns: dict[str, str], scale: Scale) -> dict:
    """Idle and steady cycles on the two mapped ledgers, repetitions interleaved."""
    out: dict = {"indexes": {}, "first_run": {}, "idle": {}}
    for key, dsn in dsns.items():
        out["indexes"][key] = map_with_doctors_indexes(dsn)
        say(f"mapped {key}: dropped {len(out['indexes'][key]['dropped'])} indexes,"
            f" created doctor's {len(out['indexes'][key]['created'])}")
    conns = {key: connect(dsn) for key, dsn in dsns.items()}
    try:
        states = {}
        for key, conn in conns.items():
            fr = measure.first_run(conn)
            states[key] = {"hour": fr.pop("hour")}
            out["first_run"][key] = fr
        for key, conn in conns.items():
            out["idle"][key] = idle_cycles(conn, IDLE_REPS)
            say(f"mapped {key}: idle cycle {out['idle'][key]['ms']['median']:.1f} ms")
        detectors = {key: measure.enabled_detectors(conn) for key, conn in conns.items()}
        cycles: dict[str, list] = {"main": [], "ref": []}
        for rep in range(scale.reps):
            for key in ("ref", "main"):
                measure.keep_current(conns[key], states[key])
                c = measure.steady_cycle(conns[key], detectors[key], scale)
                cycles[key].append(c)
                say(f"  mapped {key} cycle {rep + 1}: {c['cycle_ms']:.1f} ms")
        out["steady"] = {key: measure.summarise_cycles(v) for key, v in cycles.items()}
        for key, conn in conns.items():
            out.setdefault("shared_buffers", conn.execute("show shared_buffers").fetchone()[0])
    finally:
        for c in conns.values():
            c.close()
    return out
