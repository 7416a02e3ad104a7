"""The errors gunicorn itself answers (a request line or headers it cannot take) as JSON, not HTML.

gunicorn answers these before ki2api sees a request, so the path (and with it the API) may be unknown: the body
is one that both OpenAI's and Anthropic's error envelopes accept, `{"type": "error", "error": {"type",
"message", "param", "code"}}`. Standard library only: installed by a gunicorn hook in each worker.
"""
from __future__ import annotations

import json
from typing import Any

# gunicorn's status -> (error type, code); anything else it answers is a 400 invalid request.
_KINDS = {
    414: ("invalid_request_error", "request_line_too_long"),
    431: ("invalid_request_error", "request_headers_too_large"),
    403: ("permission_error", "forbidden"),
    417: ("invalid_request_error", "expectation_failed"),
    429: ("rate_limit_error", "too_many_connections"),
    500: ("api_error", "internal_error"),
    501: ("invalid_request_error", "not_implemented"),
}


def error_response(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response: `status reason`, closing the connection, with the JSON error body."""
    kind, code = _KINDS.get(status, ("invalid_request_error", "bad_request"))
    text = f"{reason}: {message}" if message else reason
    body = json.dumps({"type": "error", "error": {"type": kind, "message": text, "param": None, "code": code}})
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n")
    return head.encode("latin-1") + body.encode()


def install(util: Any) -> None:
    """Make gunicorn's `util.write_error` (its one writer of such answers) write `error_response` instead."""
    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        util.write_nonblock(sock, error_response(status_int, reason, mesg))

    util.write_error = write_error
