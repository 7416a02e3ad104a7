"""Checks ki2api's Anthropic-side bodies against the official anthropic SDK's own (pydantic) types."""
from __future__ import annotations

import json
from typing import Any

from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

_EVENT = TypeAdapter(RawMessageStreamEvent)


def validate_message(body: dict[str, Any]) -> Message:
    """Raise pydantic.ValidationError unless `body` is a Messages API `message`."""
    return Message.model_validate(body)


def validate_event(name: str, data: dict[str, Any]) -> None:
    """Raise unless `data` is the stream event its `event:` line names (ping and error included)."""
    assert data["type"] == name, (name, data)
    if name == "ping":
        assert data == {"type": "ping"}
    elif name == "error":
        ErrorResponse.model_validate(data)
    else:
        _EVENT.validate_python(data)


def validate_error(body: dict[str, Any]) -> None:
    """Raise unless `body` is Anthropic's error envelope."""
    ErrorResponse.model_validate(body)


def validate_count(body: dict[str, Any]) -> None:
    """Raise unless `body` is a count_tokens answer."""
    assert set(body) == {"input_tokens"}
    MessageTokensCount.model_validate(body)


def parse_sse(text: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, JSON data) for each SSE event in a body; every event must have a data line."""
    events = []
    for raw in text.split("\n\n"):
        if not raw.strip():
            continue
        name, data = None, None
        for line in raw.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        assert data is not None, raw
        events.append((name, data))
    return events
