"""Notifications (docs/benchmarks.md): how soon a receiver hears of a detection, how many deliveries
one worker sends a second, and what a storm sends.

A local HTTP receiver (a thread of this process) records when each request arrives; one delivery
worker (monitorctl.notify.worker, in a thread) drains the outbox.

- latency: a failed debit is written and failed_debit run and committed; the time from that commit
  to the receiver's request, over `latency_reps` detections; p50 and p95.
- throughput: `throughput_deliveries` deliveries enqueued at once (digests off), drained by one worker.
- storm: `storm_events` events opened by one run, with the default digest threshold: what the
  receiver gets.
"""

from __future__ import annotations

import threading
import time

from monitorctl.notify.local import LocalReceiver as Receiver
from monitorctl.notify.worker import Worker

from .common import connect, say, sql_blocks

QUERIES = dict(sql_blocks("notify.sql", "query"))


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)


def notify(dsn: str, latency_reps: int, throughput_deliveries: int, storm_events: int) -> dict:
    out: dict = {"errors": {}}
    with Receiver() as receiver, connect(dsn) as conn:
        conn.execute(QUERIES["receiver"], {"url": receiver.url})
        worker = Worker(dsn, name="bench", poll=5.0)
        thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
        thread.start()
        try:
            time.sleep(0.5)  # the worker is listening
            latencies = []
            for i in range(latency_reps):
                before = receiver.count()
                with conn.transaction():
                    conn.execute(QUERIES["failed_debit"], {"id": f"nb{i}"})
                    conn.execute("select monitor.run_detector('failed_debit')")
                committed = time.time()
                if not receiver.wait_for(before + 1, 10):
                    out["errors"]["latency"] = f"detection {i} was not delivered within 10 s"
                    break
                latencies.append((receiver.arrivals[before][0] - committed) * 1000.0)
            out["latency_ms"] = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                                 "max": percentile(latencies, 100), "n": len(latencies)}
            say(f"  notify: latency p50 {out['latency_ms']['p50']} ms, p95 {out['latency_ms']['p95']} ms")

            conn.execute(QUERIES["digests_off"])
            before = receiver.count()
            with conn.transaction():
                conn.execute(QUERIES["negative_accounts"], {"prefix": "tp", "n": throughput_deliveries})
                conn.execute("select monitor.run_detector('negative_balance')")
            t0 = time.time()
            if not receiver.wait_for(before + throughput_deliveries, 300):
                out["errors"]["throughput"] = f"{receiver.count() - before} of {throughput_deliveries} delivered"
            seconds = time.time() - t0
            out["throughput"] = {"deliveries": receiver.count() - before, "seconds": round(seconds, 3),
                                 "per_second": round((receiver.count() - before) / seconds, 1)}
            say(f"  notify: {out['throughput']['per_second']} deliveries a second with one worker")

            conn.execute(QUERIES["digests_default"])
            conn.execute(QUERIES["clear_accounts"])
            conn.execute("select monitor.run_detector('negative_balance')")  # they resolve (not sent)
            before = receiver.count()
            with conn.transaction():
                conn.execute(QUERIES["negative_accounts"], {"prefix": "st", "n": storm_events})
                conn.execute("select monitor.run_detector('negative_balance')")
            time.sleep(3.0)
            got = [a[1] for a in receiver.arrivals[before:]]
            out["storm"] = {"events": storm_events, "requests": len(got),
                            "digests": sum(1 for b in got if b["transition"] == "digest"),
                            "digest_events": sum(b["digest"]["events"] for b in got if b["transition"] == "digest")}
            say(f"  notify: a storm of {storm_events:,} events sent {len(got)} request(s)")
        finally:
            worker.stop()
            thread.join(30)
    return out
