"""The /metrics collector: the API's figures as Prometheus series (docs/metrics.md), read at most
once per cache period however often Prometheus scrapes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..model import SEVERITIES

STATUSES = ("open", "acknowledged")
RUN_STATUSES = ("ok", "error")
CIRCUITS = ("closed", "half-open", "open")


class MonitorCollector(Collector):
    def __init__(self, figures: Callable[[], dict], cache_seconds: float = 5.0):
        self.figures, self.cache_seconds = figures, cache_seconds
        self.lock = threading.Lock()
        self.cached: tuple[float, dict] | None = None

    def read(self) -> dict:
        with self.lock:
            if self.cached is None or time.monotonic() - self.cached[0] > self.cache_seconds:
                self.cached = (time.monotonic(), self.figures())
            return self.cached[1]

    def collect(self):
        f = self.read()
        active = GaugeMetricFamily("monitorctl_events_active", "Active events (open or acknowledged).",
                                   labels=["severity", "detector", "status"])
        by_severity = {s: 0 for s in SEVERITIES}
        for r in f["active"]:
            active.add_metric([r["severity"], r["detector"], r["status"]], r["n"])
            by_severity[r["severity"]] += r["n"]
        yield active
        sev = GaugeMetricFamily("monitorctl_events_active_by_severity", "Active events per severity (all detectors).",
                                labels=["severity"])
        for s, n in by_severity.items():
            sev.add_metric([s], n)
        yield sev
        yield CounterMetricFamily("monitorctl_events_opened", "Events opened since install.", value=f["opened"])
        yield CounterMetricFamily("monitorctl_events_resolved", "Events resolved since install (by a person or "
                                  "by the runner).", value=f["resolved"])

        last_run = GaugeMetricFamily("monitorctl_detector_last_run_timestamp_seconds",
                                     "When the detector's latest run started (Unix time).", labels=["detector"])
        duration = GaugeMetricFamily("monitorctl_detector_last_run_duration_seconds",
                                     "How long the detector's latest run took.", labels=["detector"])
        status = GaugeMetricFamily("monitorctl_detector_last_run_status",
                                   "1 for the status of the detector's latest run.", labels=["detector", "status"])
        lag = GaugeMetricFamily("monitorctl_detector_lag_seconds",
                                "Seconds since the detector's latest successful run.", labels=["detector"])
        enabled = GaugeMetricFamily("monitorctl_detector_enabled", "1 when the detector is enabled.",
                                    labels=["detector"])
        for d in f["detectors"]:
            name = d["name"]
            enabled.add_metric([name], 1 if d["enabled"] else 0)
            if d["last_run"] is not None:
                last_run.add_metric([name], d["last_run"].timestamp())
                duration.add_metric([name], d["duration_seconds"] or 0.0)
                for s in RUN_STATUSES:
                    status.add_metric([name, s], 1 if d["last_status"] == s else 0)
            if d["lag_seconds"] is not None:
                lag.add_metric([name], d["lag_seconds"])
        yield from (enabled, last_run, duration, status, lag)

        backlog = GaugeMetricFamily("monitorctl_deliveries", "Notification deliveries waiting or given up.",
                                    labels=["receiver", "status"])
        circuit = GaugeMetricFamily("monitorctl_receiver_circuit_state",
                                    "1 for the state of the receiver's circuit breaker.", labels=["receiver", "state"])
        for r in f["deliveries"]:
            for s in ("pending", "failed", "dead"):
                backlog.add_metric([r["name"], s], r[s])
            for c in CIRCUITS:
                circuit.add_metric([r["name"], c], 1 if r["circuit"] == c else 0)
        yield backlog
        yield circuit

        snap = f["snapshot"]
        if snap:
            yield GaugeMetricFamily("monitorctl_ledger_transactions_last_hour",
                                    "Transactions in the hour before the newest health snapshot.",
                                    value=snap["txn_last_hour"])
            yield GaugeMetricFamily("monitorctl_ledger_successes_last_hour", "Successful transactions in that hour.",
                                    value=snap["successes"])
            yield GaugeMetricFamily("monitorctl_ledger_failures_last_hour", "Failed transactions in that hour.",
                                    value=snap["failures"])
            if snap["success_rate"] is not None:
                yield GaugeMetricFamily("monitorctl_ledger_success_ratio",
                                        "Successes over successes and failures in that hour (0 to 1).",
                                        value=float(snap["success_rate"]))
            yield GaugeMetricFamily("monitorctl_ledger_snapshot_timestamp_seconds",
                                    "When the newest health snapshot was taken (Unix time).",
                                    value=snap["taken_at"].timestamp())
