"""Server-sent events framing."""
from __future__ import annotations

import logging
from typing import Any

import orjson

from ..errors import ApiError
from ..observability.requestlog import note

DONE = "data: [DONE]\n\n"
KEEP_ALIVE = ": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see the stream is alive
PROXY_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
log = logging.getLogger(__name__)


def dumps(data: Any) -> str:
    """Compact JSON as sent on the wire (UTF-8 kept as is); orjson, since this runs once per chunk
    (docs/performance.md)."""
    return orjson.dumps(data).decode()


def format_event(data: Any, event: str | None = None) -> str:
    """One SSE event: an optional `event:` line and a JSON `data:` line."""
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {dumps(data)}\n\n"


def in_band_error(exc: Exception) -> ApiError:
    """What a stream whose 200 is already out tells its client about `exc`: an ApiError as it is, anything else a
    generic internal error (logged with its traceback). Noted as the request's `stream_error`."""
    if isinstance(exc, ApiError):
        error = exc
        log.warning("stream ended by upstream error: %s", exc.message)
    else:
        error = ApiError("Internal error in ki2api; see the server log")
        log.exception("stream failed")
    note(stream_error=error.type)
    return error
