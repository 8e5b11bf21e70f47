"""monitorctl's commands, one module per family."""

import importlib

MODULES = ["setup", "run", "events", "lifecycle", "status", "detectors", "prune", "doctor", "demo"]


def register(app) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.register(app)
