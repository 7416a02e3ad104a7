"""Error responses: each API's envelope, written once, and the HTTP headers an error carries, set once.

Requests under /v1/messages, and under /v1/models with an `anthropic-version` header, get Anthropic's envelope
(`{"type": "error", "error": {type, message}}`), all others OpenAI's (`{"error": {message, type, param, code}}`),
also where no route matched (404, 405). Every error response carries Retry-After when the error knows when to
retry, Allow on a 405 (RFC 9110), and WWW-Authenticate on a 401.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import (ApiError, AuthenticationError, InvalidRequest, ModelNotFound, PayloadTooLarge, PermissionDenied,
                      RateLimited, UpstreamTimeout, UpstreamUnavailable)

log = logging.getLogger(__name__)

# Most specific first: Anthropic's error type for each of ki2api's errors (README, "Anthropic errors").
_ANTHROPIC_TYPES: tuple[tuple[type[ApiError], str], ...] = (
    (PayloadTooLarge, "request_too_large"),
    (InvalidRequest, "invalid_request_error"),
    (ModelNotFound, "not_found_error"),
    (AuthenticationError, "authentication_error"),
    (PermissionDenied, "permission_error"),
    (RateLimited, "rate_limit_error"),
    (UpstreamUnavailable, "overloaded_error"),
    (UpstreamTimeout, "timeout_error"),
)
_ANTHROPIC_HTTP_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large"}


class HttpError(ApiError):
    """A routing or protocol error Werkzeug raised (404, 405, 413 ...), with the methods a 405's URL takes."""

    type = "invalid_request_error"

    def __init__(self, exc: HTTPException) -> None:
        super().__init__(exc.description or exc.name)
        self.status = exc.code or 500
        self.allow = dict(exc.get_headers()).get("Allow")


def openai_body(exc: ApiError) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


def anthropic_type(exc: ApiError) -> str:
    """Anthropic's `error.type` for an ApiError; `api_error` for anything unforeseen."""
    if isinstance(exc, HttpError):
        return _ANTHROPIC_HTTP_TYPES.get(exc.status, "invalid_request_error" if exc.status < 500 else "api_error")
    for cls, name in _ANTHROPIC_TYPES:
        if isinstance(exc, cls):
            return name
    return "api_error"


def anthropic_body(exc: ApiError) -> dict[str, Any]:
    """Anthropic's error envelope, with this request's id."""
    body: dict[str, Any] = {"type": "error", "error": {"type": anthropic_type(exc), "message": exc.message}}
    fields = g.get("ki2api_log")
    if fields:
        body["request_id"] = fields["request_id"]
    return body


def _anthropic_path() -> bool:
    if request.path == "/v1/models" or request.path.startswith("/v1/models/"):  # both APIs' path: by the header
        return "anthropic-version" in request.headers
    return request.path == "/v1/messages" or request.path.startswith("/v1/messages/")


def error_response(exc: ApiError) -> Response:
    """`exc` in the envelope of the API the request was for, with its status and headers."""
    response = jsonify(anthropic_body(exc) if _anthropic_path() else openai_body(exc))
    response.status_code = exc.status
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    allow = getattr(exc, "allow", None)
    if allow:
        response.headers["Allow"] = allow
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def register_error_handlers(app: Flask) -> None:
    """Render every error of the app through error_response: ApiErrors, Werkzeug's, and anything unforeseen."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return error_response(HttpError(exc))

    @app.errorhandler(ApiError)
    def _api(exc: ApiError) -> Response:
        return error_response(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError("Internal error in ki2api; see the server log"))
