"""Prompt caching in the fake Kiro: cache points counted and refused as the service would, and a prompt cache.

The shape (a cachePoint only on a userInputMessage or assistantResponseMessage, exactly {"type": "default"},
never among the tools) is checked with Kiro's other rules (tests/helpers/kiro_request.py): a break is the
generic 400 "Improperly formed request.". What the service does beyond the model list's 4 points per request is
unknown; the fake refuses it with a 400 ValidationException of its own wording (TOO_MANY), which ki2api must
never provoke. With the state's `cache_points: "refuse"` every cache point is refused as improperly formed (the
service not taking them at all, which ki2api's fallback is tested against).

The cache: the prefix up to each cache point (the model, the tools, and the messages up to and including the
marked one, without cache points, the current message's tools or ids) is hashed per account. A prefix seen
within TTL seconds is read: the longest such is `cacheReadInputTokens`; the longest prefix of the request, if
new, is written: its tokens beyond what was read are `cacheWriteInputTokens`; the rest of the input is
`uncachedInputTokens`. Tokens are characters / server.CHARS_PER_TOKEN, the fake's tokenizer. A request without
cache points gets no metadataEvent, as before.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_POINTS = 4
TTL = 300.0  # seconds a cached prefix lives after it was last written or read
TOO_MANY = {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
            "message": f"A request may carry at most {MAX_POINTS} cache points.", "reason": None}


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    state = body["conversationState"]
    history = [h.get("userInputMessage") or h.get("assistantResponseMessage") for h in state["history"]]
    return history + [state["currentMessage"]["userInputMessage"]]


def count(body: dict[str, Any]) -> int:
    """How many cache points a (well-formed) body carries."""
    return sum("cachePoint" in m for m in _messages(body))


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A message as the cache sees it: no cache point, no tools (counted apart), whichever turn carries it."""
    context = {k: v for k, v in (message.get("userInputMessageContext") or {}).items() if k != "tools"}
    return {**{k: v for k, v in message.items() if k not in ("cachePoint", "userInputMessageContext")},
            "userInputMessageContext": context}


class PromptCache:
    """Prefix hashes per account with their expiry; `usage` reads and writes them for one request."""

    def __init__(self) -> None:
        self.entries: dict[str, float] = {}

    def usage(self, body: dict[str, Any], account: str, total: int, chars_per_token: float, now: float
              ) -> dict[str, int] | None:
        """The request's tokenUsage input figures (and the cache updated), or None if it has no cache point."""
        messages = _messages(body)
        marks = [i for i, m in enumerate(messages) if "cachePoint" in m]
        if not marks:
            return None
        self.entries = {k: until for k, until in self.entries.items() if until > now}
        tools = messages[-1].get("userInputMessageContext", {}).get("tools", [])
        head = [account, messages[-1].get("modelId"), tools]
        prefixes = []
        for i in marks:
            text = json.dumps(head + [_plain(m) for m in messages[:i + 1]], ensure_ascii=False, sort_keys=True)
            key = hashlib.sha256(text.encode()).hexdigest()
            prefixes.append((key, min(total, round(len(text) / chars_per_token))))
        read = max((tokens for key, tokens in prefixes if key in self.entries), default=0)
        last_key, last_tokens = prefixes[-1]
        write = 0 if last_key in self.entries else max(0, last_tokens - read)
        for key, _ in prefixes:
            self.entries[key] = now + TTL
        return {"uncachedInputTokens": max(0, total - read - write), "cacheReadInputTokens": read,
                "cacheWriteInputTokens": write}
