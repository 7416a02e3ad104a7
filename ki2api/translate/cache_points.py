"""Kiro's cache points: where a client's prompt-cache breakpoints go upstream, and which of them are sent.

An Anthropic `cache_control` breakpoint (on a system block, a tool, or a content block of a message) marks the
end of a prefix to cache. Kiro's published request model (protocol notes, "Prompt caching") takes
`cachePoint: {"type": "default"}` on a `userInputMessage` or `assistantResponseMessage`: "add a cache point
after the current message". history.build_payload puts one on the Kiro message that holds the marked block
(merged messages: the merged one; the system prompt or the tools: the first message); `fit` then keeps what
the model's `promptCaching` allows:
- none for a model that does not support caching;
- none whose prefix (the tools and every message up to the point, by ki2api's estimate, without Kiro's own
  additions) is under the model's `minimumTokensPerCacheCheckpoint`: Anthropic ignores those too;
- of the rest, the LAST `maximumCacheCheckpointsPerRequest`: the latest breakpoint covers the longest prefix.
A `cachePoint` entry in the tools array (also in the model) is never sent: Kiro refuses it. Pure: no I/O.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from ..models import ModelInfo
from .answer import IMAGE_TOKENS
from .usage import estimate_tokens

KEY = "cachePoint"


def marked(block: Any) -> bool:
    """True if an Anthropic block (a system or content block, a tool) carries a `cache_control` breakpoint."""
    return isinstance(block, dict) and isinstance(block.get("cache_control"), dict)


def _messages(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The payload's Kiro messages in order: the history's, then the current one."""
    state = payload.get("conversationState") or {}
    for entry in state.get("history") or ():
        yield entry.get("userInputMessage") or entry.get("assistantResponseMessage") or {}
    yield (state.get("currentMessage") or {}).get("userInputMessage") or {}


def count(payload: dict[str, Any]) -> int:
    """How many cache points the payload carries."""
    return sum(KEY in message for message in _messages(payload))


def _estimate(message: dict[str, Any]) -> int:
    """A message's tokens for the prefix sum: its JSON without images or tools, plus its images."""
    context = message.get("userInputMessageContext") or {}
    slim = {k: v for k, v in message.items() if k not in ("images", "userInputMessageContext")}
    slim["context"] = {k: v for k, v in context.items() if k != "tools"}
    return estimate_tokens(json.dumps(slim, ensure_ascii=False)) + IMAGE_TOKENS * len(message.get("images") or ())


def fit(payload: dict[str, Any], info: ModelInfo) -> dict[str, Any]:
    """Drop the cache points the model cannot take (see the module doc); the payload is changed in place."""
    messages = list(_messages(payload))
    points = [m for m in messages if KEY in m]
    if not points:
        return payload
    keep: list[dict[str, Any]] = []
    if info.cache_points > 0:
        tools = messages[-1].get("userInputMessageContext", {}).get("tools") or []
        prefix = estimate_tokens(json.dumps(tools, ensure_ascii=False)) if tools else 0
        for message in messages:  # estimated only until the minimum is reached: later prefixes are longer
            if prefix < info.cache_min_tokens:
                prefix += _estimate(message)
            if KEY in message and prefix >= info.cache_min_tokens:
                keep.append(message)
        keep = keep[-info.cache_points:]
    kept = {id(m) for m in keep}
    for message in points:
        if id(message) not in kept:
            del message[KEY]
    return payload


def without(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of the payload with no cache points (the payload itself is not changed)."""
    if not count(payload):
        return payload
    state = dict(payload["conversationState"])
    state["history"] = [{role: _bare(message) for role, message in entry.items()} for entry in state["history"]]
    current = dict(state["currentMessage"])
    current["userInputMessage"] = _bare(current["userInputMessage"])
    state["currentMessage"] = current
    return {**payload, "conversationState": state}


def _bare(message: Any) -> Any:
    return {k: v for k, v in message.items() if k != KEY} if isinstance(message, dict) and KEY in message else message
