"""What the server shows, as API methods (monitorctl.api.Monitor has them): the figures of /metrics
and the health judgement of the probes (docs/metrics.md). Reads only."""

from __future__ import annotations

import datetime as dt
import json

from . import db


class Observation:
    """Mixed into monitorctl.api.Monitor: ``self._installed()`` is its checked connection."""

    def metrics(self) -> dict:
        """Active events by severity, detector and status; events opened since install; each
        detector's last run; each receiver's backlog and circuit; the newest health snapshot. A few
        indexed reads, whatever the number of events."""
        conn = self._installed()
        now = db.value(conn, "now")
        detectors = db.rows(conn, "status_detectors")
        for d in detectors:
            d["duration_seconds"] = d["duration"].total_seconds() if d["duration"] is not None else None
            d["lag_seconds"] = (now - d["last_ok"]).total_seconds() if d["last_ok"] else None
        return {
            "active": db.rows(conn, "metrics_active_events"),
            "opened": db.value(conn, "metrics_events_opened"),
            "resolved": db.value(conn, "metrics_events_resolved"),
            "detectors": detectors,
            "deliveries": db.rows(conn, "receivers_list", {"name": None}),
            "snapshot": db.row(conn, "metrics_snapshot"),
        }

    def snapshots(self, window: dt.timedelta = dt.timedelta(hours=24)) -> list[dict]:
        """Health snapshots of the last ``window`` (the overview's charts)."""
        return db.rows(self._installed(), "snapshots_since", {"window": window})

    def changes(self, heartbeat: float = 15.0):
        """Event changes as they are announced (`NOTIFY monitor_events`): each payload as a dict, and
        None after ``heartbeat`` seconds without one. Uses this Monitor's connection, for a stream of
        its own (the server's live updates)."""
        conn = self._installed()
        db.run(conn, "notify_listen")
        while True:
            got = False
            for note in conn.notifies(timeout=heartbeat, stop_after=1):
                got = True
                try:
                    yield json.loads(note.payload)
                except ValueError:
                    yield {}
            if not got:
                yield None
