"""Write overhead: pgbench payments without detection and with every detector scheduled by pg_cron
(the normal install, jobs every minute), alternated round by round.

Each run lasts `pgbench_seconds` (two minutes at the real scales) and is judged on its second half
only. Before a run with detection, one cycle (CALL monitor.run_all()) catches up with the rows the
run without detection wrote, as the every-minute jobs would have; the first tick inside the run
then has less than a minute of rows, and the tick in the second half has exactly the minute since
the first one: the steady state of a ledger written at that rate with detection every minute."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from monitorctl import embedded, schedule
from monitorctl.install import install

from .common import BENCH_DIR, Scale, ratio, say

PGBENCH_SCRIPT = BENCH_DIR / "pgbench_payment.sql"


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidate = embedded.pg_bindir() / "pgbench"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("pgbench not found: install postgresql-client or put pgbench on PATH")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q * (len(values) - 1)))))
    return values[k]


def run_pgbench(dsn: str, scale: Scale, seconds: int, workdir: Path, tag: str) -> dict:
    """One pgbench run. TPS and latency percentiles over the second half of the run, from the
    per-transaction log (completion time, latency); pgbench's own TPS for the whole run as well."""
    p = conninfo_to_dict(dsn)
    env = dict(os.environ)
    if p.get("password"):
        env["PGPASSWORD"] = p["password"]
    cmd = [pgbench_binary(), "-n", "-M", "prepared", "-f", str(PGBENCH_SCRIPT),
           "-D", f"naccounts={scale.accounts}", "-c", str(scale.pgbench_clients),
           "-j", str(min(2, scale.pgbench_clients)), "-T", str(seconds),
           "-l", f"--log-prefix={workdir / tag}"]
    if scale.pgbench_rate:  # a fixed arrival rate: latency then includes any wait for the schedule
        cmd += ["-R", str(scale.pgbench_rate)]
    for key, opt in (("host", "-h"), ("port", "-p"), ("user", "-U")):
        if p.get(key):
            cmd += [opt, str(p[key])]
    cmd.append(p.get("dbname") or "postgres")
    started = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", proc.stdout)
    if proc.returncode != 0 or not m:
        tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {tail}")
    done: list[tuple[float, float]] = []  # (completed at, latency ms)
    for log in workdir.glob(f"{tag}.*"):
        for line in log.read_text().splitlines():
            parts = line.split()  # client_id transaction_no time_us script_no epoch_s epoch_us
            if len(parts) >= 6:
                done.append((int(parts[4]) + int(parts[5]) / 1e6, int(parts[2]) / 1000.0))
        log.unlink()
    first = min((t for t, _ in done), default=started)
    lo, hi = first + seconds / 2, first + seconds
    window = [lat for t, lat in done if lo <= t < hi]
    failed = re.search(r"number of failed transactions: (\d+)", proc.stdout)
    return {"tps": round(len(window) / (hi - lo), 1), "p50_ms": round(percentile(window, 0.50), 3),
            "p95_ms": round(percentile(window, 0.95), 3), "transactions_in_window": len(window),
            "tps_whole_run": round(float(m.group(1)), 1), "transactions": len(done),
            "failed": int(failed.group(1)) if failed else 0,
            "window": [dt.datetime.fromtimestamp(lo, dt.timezone.utc).isoformat(),
                       dt.datetime.fromtimestamp(hi, dt.timezone.utc).isoformat()]}


class CronJobs:
    """The pg_cron jobs install created for one database, switched on and off together."""

    def __init__(self, conn: psycopg.Connection, names: list[str]):
        self.conn = conn
        self.ids = [r[0] for r in conn.execute("select jobid from cron.job where jobname = any(%s)", (names,))]

    def set_active(self, active: bool) -> None:
        for jobid in self.ids:
            self.conn.execute("select cron.alter_job(%s, active => %s)", (jobid, active))

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until none of the jobs is still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.conn.execute(
                "select count(*) from cron.job_run_details where jobid = any(%s) and status in ('running', 'starting')",
                (self.ids,)).fetchone()[0]
            if not running:
                return
            time.sleep(1)

    def runs_between(self, start, end) -> list[dict]:
        """The job runs that started in [start, end): job, start, seconds (None while running), status."""
        return [{"job": r[0], "start": r[1].isoformat(), "seconds": None if r[2] is None else round(float(r[2]), 2),
                 "status": r[3], "message": r[4]}
                for r in self.conn.execute(
                    "select j.jobname, d.start_time, extract(epoch from d.end_time - d.start_time), d.status,"
                    " left(d.return_message, 200) from cron.job_run_details d join cron.job j using (jobid)"
                    " where d.jobid = any(%s) and d.start_time >= %s and d.start_time < %s"
                    " order by d.start_time, j.jobname", (self.ids, start, end))]


def summarise_jobs(job_runs: list[dict], lo: str, hi: str) -> dict:
    """Detector job runs overall and those that started inside the measured window."""
    lo_t, hi_t = dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi)
    inside = [j for j in job_runs if lo_t <= dt.datetime.fromisoformat(j["start"]) < hi_t]
    return {"job_runs": len(job_runs), "job_runs_in_window": len(inside),
            "busy_s_in_window": round(sum(j["seconds"] or 0 for j in inside), 2),
            "failed": [f"{j['job']}: {j['message']}" for j in job_runs if j["status"] == "failed"]}


def catch_up(dsn: str) -> float:
    """One committed cycle over what is new, as the every-minute jobs would have run it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '300s'")  # per detector; an overrun is recorded as its error
        t0 = time.perf_counter()
        conn.execute("CALL monitor.run_all()")
        return round((time.perf_counter() - t0) * 1000, 1)


def write_overhead(server: embedded.Server, dsn: str, scale: Scale, extra_sql: list[str] = ()) -> dict:
    """Alternate pgbench runs without and with scheduled detection; medians of each arm."""
    report = install(dsn, with_ledger=True, do_schedule=True)  # the normal install creates the jobs
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in extra_sql:  # install re-applied sql/: apply the candidate changes again
            conn.execute(Path(path).read_text())
    if report.scheduling is None:
        return {"error": f"pg_cron scheduling unavailable: {report.scheduling_off}"}
    sched = report.scheduling
    names = sched.created + sched.updated + sched.unchanged
    cron_dsn = server.dsn(sched.cron_database)
    runs: list[dict] = []
    with psycopg.connect(cron_dsn, autocommit=True) as cconn, tempfile.TemporaryDirectory() as tmp:
        jobs = CronJobs(cconn, names)
        try:
            for rnd in range(scale.pgbench_rounds):
                for arm in ("off", "on"):
                    jobs.set_active(False)
                    jobs.wait_idle()
                    catchup_ms = None
                    if arm == "on":
                        catchup_ms = catch_up(dsn)
                        jobs.set_active(True)
                    load = round(os.getloadavg()[0], 2)
                    start = cconn.execute("select clock_timestamp()").fetchone()[0]
                    result = run_pgbench(dsn, scale, scale.pgbench_seconds, Path(tmp), f"pb{rnd}{arm}")
                    end = cconn.execute("select clock_timestamp()").fetchone()[0]
                    job_runs = jobs.runs_between(start, end)
                    result.update(arm=arm, round=rnd + 1, loadavg_before=load, started_at=start.isoformat(),
                                  catchup_ms=catchup_ms, cron=summarise_jobs(job_runs, *result["window"]),
                                  cron_runs=job_runs)
                    runs.append(result)
                    say(f"  pgbench round {rnd + 1} detection {arm}: {result['tps']} tps,"
                        f" p95 {result['p95_ms']} ms (second half); detector job runs"
                        f" {result['cron']['job_runs_in_window']} in it")
        finally:
            jobs.set_active(False)
            jobs.wait_idle()
            with psycopg.connect(dsn, autocommit=True) as conn:
                schedule.remove_all(conn, dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:  # what the detectors recorded meanwhile
        detector_errors = [f"{r[0]}: {r[1]}" for r in conn.execute(
            "select detector, left(error, 200) from monitor.detector_runs where status = 'error'"
            " and started_at >= %s order by started_at", (runs[0]["started_at"],))] if runs else []
    arms = {}
    for arm in ("off", "on"):
        mine = [r for r in runs if r["arm"] == arm]
        arms[arm] = {"tps_median": round(statistics.median(r["tps"] for r in mine), 1),
                     "p95_ms_median": round(statistics.median(r["p95_ms"] for r in mine), 3),
                     "p50_ms_median": round(statistics.median(r["p50_ms"] for r in mine), 3)}
    return {"seconds_per_run": scale.pgbench_seconds, "measured": "second half of each run",
            "clients": scale.pgbench_clients, "rate": scale.pgbench_rate,
            "cron_jobs": sorted(names), "pg_cron": sched.version, "runs": runs, **arms,
            "detector_errors": detector_errors,
            "tps_ratio": ratio(arms["on"]["tps_median"], arms["off"]["tps_median"]),
            "p95_ratio": ratio(arms["on"]["p95_ms_median"], arms["off"]["p95_ms_median"])}
