"""Request limits checked on the raw JSON body, before any translation: messages, tools, image sizes.

Both API shapes are covered by one walk: OpenAI (`image_url.url` data URLs) and Anthropic
(`source.data`, also inside `tool_result` content). Each refusal names the field and the setting.
The body size itself (413) is checked while reading, in routes/body.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import InvalidRequest


@dataclass(frozen=True)
class BodyLimits:
    """The configured caps (MAX_MESSAGES, MAX_TOOLS, MAX_IMAGE_BYTES)."""

    max_messages: int
    max_tools: int
    max_image_bytes: int


class LimitExceeded(InvalidRequest):
    """A request over one of the configured limits (400; param names the field)."""


def check(body: dict[str, Any], limits: BodyLimits) -> None:
    """Raise LimitExceeded if the body has too many messages or tools, or an image that is too large."""
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise LimitExceeded(f"'messages' has {len(messages)} entries; this server takes at most "
                            f"{limits.max_messages} (MAX_MESSAGES)", param="messages", code="too_many_messages")
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > limits.max_tools:
        raise LimitExceeded(f"'tools' has {len(tools)} entries; this server takes at most {limits.max_tools} "
                            "(MAX_TOOLS)", param="tools", code="too_many_tools")
    if isinstance(messages, list):
        for where, size in _images(messages):
            if size > limits.max_image_bytes:
                raise LimitExceeded(f"{where}: the image is about {size} bytes; this server takes images of at "
                                    f"most {limits.max_image_bytes} bytes (MAX_IMAGE_BYTES)", param=where,
                                    code="image_too_large")


def _images(messages: list[Any]) -> Iterator[tuple[str, int]]:
    """(field path, decoded size estimate) of every inline image in the messages."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from _parts(content, f"messages[{i}].content")


def _parts(parts: list[Any], where: str) -> Iterator[tuple[str, int]]:
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            continue
        here = f"{where}[{j}]"
        image_url = part.get("image_url")
        if isinstance(image_url, dict) and isinstance(image_url.get("url"), str):
            yield f"{here}.image_url.url", _decoded_size(image_url["url"].partition(",")[2])
        source = part.get("source")
        if isinstance(source, dict) and isinstance(source.get("data"), str):
            yield f"{here}.source.data", _decoded_size(source["data"])
        nested = part.get("content")
        if isinstance(nested, list) and where.count(".content") < 2:  # tool_result blocks hold images too
            yield from _parts(nested, f"{here}.content")


def _decoded_size(data: str) -> int:
    """Bytes a base64 string decodes to (whitespace ignored), without decoding it."""
    length = len(data) - sum(data.count(c) for c in " \r\n\t")
    return length * 3 // 4
