"""One line per request on stderr: method, path, status, milliseconds (text, or JSON lines)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time


class RequestLog:
    def __init__(self, app, json_lines: bool = False):
        self.app, self.json_lines = app, json_lines

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), {"code": 0}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 1)
            client = (scope.get("client") or ("-",))[0]
            if self.json_lines:
                line = json.dumps({"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                                   "client": client, "method": scope["method"], "path": scope["path"],
                                   "status": status["code"], "ms": ms})
            else:
                line = f"{client} {scope['method']} {scope['path']} {status['code']} {ms} ms"
            print(line, file=sys.stderr, flush=True)
