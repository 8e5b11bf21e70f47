"""The detector registry as Python sees it: the one check that a detector exists, and its wording."""

from __future__ import annotations

from . import db
from .errors import UnknownDetector, UsageError


def require_detector(conn, name: str, *, with_events: bool = False) -> None:
    """Raise UnknownDetector unless ``name`` is a registered detector (or, with ``with_events``, one
    whose events remain: a removed custom detector's events can still be listed).

    The wording is the database's own (monitor.configure_detector, monitor.unregister_detector):
    ``unknown detector NAME (known: a, b, ...)``."""
    if db.value(conn, "detector_known" if with_events else "detector_exists", {"name": name}):
        return
    raise UnknownDetector(name, db.value(conn, "detector_names") or "")


def require_available(conn, name: str, where: str = "") -> None:
    """Raise UsageError when the mapping gives detector ``name`` nothing to read (install turned it off,
    monitorctl/mapping.py: unavailable): it cannot be enabled."""
    why = (db.value(conn, "unavailable_detectors") or {}).get(name)
    if why:
        raise UsageError(f"{where}{name} cannot be enabled: {why} (docs/mapping.md)")
