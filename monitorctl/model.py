"""The words monitorctl shares with the database: severities, event statuses, detector kinds.

The database is their source of truth (the CHECK constraints of monitor.detectors, monitor.events and
monitor.alert_history); tests/integration/test_api.py checks that these lists match it. Everything in
Python that needs one of them (options, validation, rendering, queries) takes it from here.
"""

from __future__ import annotations

import enum

from .errors import UsageError

SEVERITIES = ("critical", "high", "medium", "low")  # most severe first
STATUSES = ("open", "acknowledged", "resolved")  # an event's lifecycle
KINDS = ("finding", "condition")  # a finding stays open until resolved; a condition resolves itself
# the status filters of an event listing: a status, or one of these names for several
STATUS_FILTERS = {"active": ("open", "acknowledged"), "all": None}


def _choices(name: str, values) -> type[enum.Enum]:
    """A str enum of ``values``, for command-line options that take one of them."""
    return enum.Enum(name, {v: v for v in values}, type=str)


Severity = _choices("Severity", SEVERITIES)
Kind = _choices("Kind", KINDS)
StatusFilter = _choices("StatusFilter", (*STATUSES, *STATUS_FILTERS))


def check_severity(severity: str) -> str:
    """``severity``, or UsageError (exit 2) naming the severities."""
    if severity not in SEVERITIES:
        raise UsageError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    return severity


def at_least(severity: str) -> list[str]:
    """The severities at least as severe as ``severity``: 'high' -> ['critical', 'high']."""
    return list(SEVERITIES[: SEVERITIES.index(severity) + 1])


def statuses_of(status_filter: str | None) -> list[str] | None:
    """The event statuses a status filter selects ('active' -> open and acknowledged; 'all' -> None)."""
    if status_filter is None:
        return None
    if status_filter in STATUS_FILTERS:
        chosen = STATUS_FILTERS[status_filter]
        return list(chosen) if chosen else None
    return [status_filter]
