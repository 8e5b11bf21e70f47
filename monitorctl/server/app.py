"""The server's application (Starlette): /metrics, the health probes and the dashboard
(docs/metrics.md, docs/dashboard.md). Every read and write goes through monitorctl.api.Monitor: one
per request (a connection each), one per live stream."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, \
    StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .. import output
from ..api import Monitor
from ..errors import MonitorError
from ..model import SEVERITIES
from .metrics import MonitorCollector

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.filters["age"] = output.age
TEMPLATES.env.filters["amount"] = lambda v: "" if v is None else output.amount(v)
TEMPLATES.env.filters["duration"] = output.duration
TEMPLATES.env.filters["pretty"] = lambda v: json.dumps(output.jsonable(v), indent=2, sort_keys=True, ensure_ascii=False)
TOKEN_ENV = "MONITOR_SERVE_TOKEN"
COOKIE = "monitorctl_operator"


def create_app(dsn: str | None = None, token: str | None = None, cache_seconds: float = 5.0) -> Starlette:
    """The application for one database. ``token`` (default: $MONITOR_SERVE_TOKEN) lets people who know
    it acknowledge and resolve from the dashboard; without one the dashboard is read-only."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    key = secrets.token_bytes(32)  # signs this process's operator cookies and CSRF tokens

    def monitor() -> Monitor:
        return Monitor(dsn)

    def figures() -> dict:
        with monitor() as m:
            return m.metrics()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(figures, cache_seconds))

    def sign(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def operator(request: Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        return bool(token) and hmac.compare_digest(cookie, sign("operator"))

    def page(request: Request, name: str, **context) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, {
            "operator": operator(request), "writable": bool(token), "csrf": sign("csrf:" + request.cookies.get(COOKIE, "")),
            "severities": SEVERITIES, **context})

    def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def live(request: Request) -> Response:
        return PlainTextResponse("ok")

    def ready(request: Request) -> Response:
        try:
            with monitor() as m:
                m.detectors()  # connects and checks the schema is installed and current
        except MonitorError as exc:
            return PlainTextResponse(f"not ready: {exc}", status_code=503)
        return PlainTextResponse("ready")

    def health(request: Request) -> Response:
        try:
            with monitor() as m:
                h = m.status()["health"]
        except MonitorError as exc:
            return JSONResponse({"healthy": False, "problems": [str(exc)]}, status_code=503)
        return JSONResponse(h, status_code=200 if h["healthy"] else 503)

    def overview(request: Request) -> Response:
        with monitor() as m:
            status = m.status()
            snaps = m.snapshots()
        return page(request, "overview.html", status=status, snapshots=snaps)

    def events(request: Request) -> Response:
        q = request.query_params
        severity = [s for s in q.getlist("severity") if s in SEVERITIES] or None
        status = q.get("status") or "active"
        detector = q.get("detector") or None
        with monitor() as m:
            with m.events(status=status, severities=severity, detector=detector, limit=500) as rows:
                listed = list(rows)
            names = [d["name"] for d in m.detectors()]
        return page(request, "events.html", events=listed, detectors=names,
                    filters={"severity": severity or [], "status": status, "detector": detector or ""})

    def event(request: Request) -> Response:
        event_id = int(request.path_params["event_id"])
        with monitor() as m:
            try:
                ev, history = m.event(event_id)
            except MonitorError as exc:
                return HTMLResponse(f"<p>{exc}</p>", status_code=404)
            attempts = m.event_attempts(event_id)
        return page(request, "event.html", event=ev, history=history, attempts=attempts, event_id=event_id)

    async def login(request: Request) -> Response:
        form = await request.form()
        if not token or not hmac.compare_digest(str(form.get("token", "")), token):
            return PlainTextResponse("wrong token", status_code=403)
        response = RedirectResponse(form.get("next") or "/", status_code=303)
        response.set_cookie(COOKIE, sign("operator"), httponly=True, samesite="strict")
        return response

    async def transition(request: Request) -> Response:
        """acknowledge or resolve, from the event page: an operator's signed cookie and the CSRF token."""
        form = await request.form()
        if request.path_params["action"] not in ("ack", "resolve"):
            return PlainTextResponse("not found", status_code=404)
        if not operator(request):
            return PlainTextResponse("read-only: sign in with the operator token first", status_code=403)
        if not hmac.compare_digest(str(form.get("csrf", "")), sign("csrf:" + request.cookies.get(COOKIE, ""))):
            return PlainTextResponse("bad CSRF token", status_code=403)
        event_id = int(request.path_params["event_id"])
        actor = str(form.get("actor") or "dashboard")[:100]
        with monitor() as m:
            try:
                if request.path_params["action"] == "ack":
                    m.acknowledge([event_id], actor=actor)
                else:
                    m.resolve([event_id], note=str(form.get("note") or "") or None, actor=actor)
            except MonitorError as exc:
                return PlainTextResponse(str(exc), status_code=409)
            except psycopg.errors.InsufficientPrivilege:
                return PlainTextResponse("the server's database role may not change events: grant it "
                                         "monitor_operator (docs/security.md)", status_code=403)
        return RedirectResponse(f"/events/{event_id}", status_code=303)

    def stream(request: Request) -> Response:
        """Server-sent events: each announced change, and a comment every 15 s to keep the line open."""
        def lines():
            with monitor() as m:
                for change in m.changes(heartbeat=15.0):
                    yield ": still here\n\n" if change is None else f"data: {json.dumps(change)}\n\n"
        return StreamingResponse(lines(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    routes = [
        Route("/metrics", metrics), Route("/health/live", live), Route("/health/ready", ready),
        Route("/health", health), Route("/", overview), Route("/events", events),
        Route("/events/{event_id:int}", event), Route("/live", stream),
        Route("/login", login, methods=["POST"]),
        Route("/events/{event_id:int}/{action:str}", transition, methods=["POST"]),
    ]
    return Starlette(routes=routes)
