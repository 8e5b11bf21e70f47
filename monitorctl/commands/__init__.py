"""monitorctl's commands, one module per family; each exposes register(app)."""

from . import demo, detectors, doctor, events, lifecycle, notifications, prune, run, serve, setup, status

MODULES = [setup, run, events, lifecycle, status, detectors, notifications, serve, prune, doctor, demo]


def register(app) -> None:
    for module in MODULES:
        module.register(app)
