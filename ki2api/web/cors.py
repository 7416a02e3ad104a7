"""CORS for browser-based clients: off unless CORS_ORIGINS names the origins allowed (or `*`).

Preflight requests (OPTIONS with Access-Control-Request-Method) from an allowed origin are answered
here, before any blueprint asks for a key: browsers send them without credentials. Responses to
allowed origins carry Access-Control-Allow-Origin; other origins get no CORS headers at all, so the
browser refuses to hand them the answer. No cookies are used, so credentials are never allowed.
"""
from __future__ import annotations

import re
from typing import Optional

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, OPTIONS"
EXPOSED_HEADERS = "X-Request-Id, Retry-After, X-Kiro-Credits"
MAX_AGE = "600"
_HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")


def allowed_origin(origin: str | None, origins: tuple[str, ...]) -> str | None:
    """The Access-Control-Allow-Origin value for `origin`, or None if it is not allowed."""
    if not origin or not origins:
        return None
    if "*" in origins:
        return "*"
    return origin if origin.rstrip("/") in origins else None


def init_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers for `origins`; with none configured, register nothing."""
    if not origins:
        return

    @app.before_request
    def _preflight() -> Optional[Response]:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        allow = allowed_origin(request.headers.get("Origin"), origins)
        if allow is None:
            return None  # not ours to allow: normal handling (a 401), which the browser reports as blocked
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        asked = request.headers.get("Access-Control-Request-Headers", "").strip()
        if asked and _HEADER_LIST.fullmatch(asked):
            response.headers["Access-Control-Allow-Headers"] = asked
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        allow = allowed_origin(request.headers.get("Origin"), origins)
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if allow != "*":
            response.vary.add("Origin")
        return response
