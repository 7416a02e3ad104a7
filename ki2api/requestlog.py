"""Request ids and the one summary log line per request."""
from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request

log = logging.getLogger("ki2api.request")


def _request_id() -> str:
    given = request.headers.get("X-Request-Id", "")
    if 0 < len(given) <= 64 and all(c.isalnum() or c in "-_." for c in given):
        return given
    return uuid.uuid4().hex


def note(**fields: object) -> None:
    """Attach fields (model, stream, upstream_status...) to this request's summary line."""
    g.ki2api_log.update(fields)


def first_byte() -> None:
    """Record the time the first body byte of a stream was produced."""
    if "ttfb_ms" not in g.ki2api_log:
        g.ki2api_log["ttfb_ms"] = round((time.perf_counter() - g.ki2api_start) * 1000, 1)


def init_request_log(app: Flask) -> None:
    """Give each request an id (echoed as X-Request-Id) and log one line when its response closes."""

    @app.before_request
    def _start() -> None:
        g.ki2api_start = time.perf_counter()
        g.ki2api_log = {"request_id": _request_id()}

    @app.after_request
    def _finish(response: Response) -> Response:
        fields = g.get("ki2api_log")
        if fields is None:
            return response
        start = g.ki2api_start
        response.headers["X-Request-Id"] = fields["request_id"]
        fields.update(method=request.method, path=request.path, status=response.status_code)

        def _emit() -> None:
            fields["total_ms"] = round((time.perf_counter() - start) * 1000, 1)
            fields.setdefault("ttfb_ms", fields["total_ms"])
            log.info(" ".join(f"{k}={v}" for k, v in fields.items()))

        response.call_on_close(_emit)
        return response
