"""serve: Prometheus metrics, health probes and the dashboard over HTTP (docs/metrics.md, docs/dashboard.md)."""

from __future__ import annotations

import typer

from ..errors import UsageError
from .common import root_obj, say

LOG_FORMATS = ("text", "json")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(9187, "--port", min=1, max=65535, help="Port to listen on."),
    log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                   help="One line per request on stderr: text, or JSON lines."),
) -> None:
    """Serve /metrics (Prometheus), /health/live, /health/ready and /health (probes), and the dashboard
    (live events, detectors, acknowledge and resolve). Read-only unless MONITOR_SERVE_TOKEN is set: who
    signs in with that token may acknowledge and resolve. Connect as a role with monitor_reader (and
    monitor_operator for the writes). Stops cleanly on SIGTERM or Ctrl-C.

    Example: monitorctl serve --host 0.0.0.0 --port 9187   (with MONITOR_SERVE_TOKEN set, operators may write)
    """
    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format must be text or json, not {log_format}")
    import uvicorn

    from ..server.app import create_app
    from ..server.logging import RequestLog

    app = RequestLog(create_app(root_obj(ctx).get("dsn")), json_lines=log_format == "json")
    say(f"monitorctl serve: http://{host}:{port}/ (metrics /metrics, probes /health/live /health/ready /health)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                timeout_graceful_shutdown=5)


def register(app: typer.Typer) -> None:
    app.command()(serve)
