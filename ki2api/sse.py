"""Server-sent events framing."""
from __future__ import annotations

from typing import Any

import orjson

DONE = "data: [DONE]\n\n"
PROXY_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def dumps(data: Any) -> str:
    """Compact JSON as sent on the wire (UTF-8 kept as is); orjson: a tenth of json.dumps's time per chunk."""
    return orjson.dumps(data).decode()


def format_event(data: Any, event: str | None = None) -> str:
    """One SSE event: an optional `event:` line and a JSON `data:` line."""
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {dumps(data)}\n\n"
