"""Answer parts -> Anthropic Messages: the stream's `(event, data)` pairs, or one `message` object.

Content blocks follow the answer: a thinking block for reasoning, a text block for text, one
tool_use block per call, each opened when its first part arrives and closed when another
kind begins. Tool names are already the client's: `Answer(names=...)` maps them back. A web search the
model made (translate/search_loop.py) is a `server_tool_use` block and a `web_search_tool_result` block.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .answer import (MAX_TOKENS, Answer, Part, ReasoningPart, RedactedReasoningPart, TextPart, ToolArgs, ToolEnd,
                     ToolStart, Usage)
from .search_loop import SearchCall, SearchDone, done_block, use_block

log = logging.getLogger(__name__)
Event = tuple[str, dict[str, Any]]
PING: Event = ("ping", {"type": "ping"})


def message_id() -> str:
    """A fresh Anthropic-style message id."""
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage_dict(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage object: input_tokens excludes what was read from or written to the cache, unlike
    OpenAI's (both only as Kiro reports them); plus `kiro_credits` when Kiro reported what the answer cost."""
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    body: dict[str, Any] = {"input_tokens": max(0, usage.input_tokens - cached),
                            "output_tokens": usage.output_tokens,
                            "cache_creation_input_tokens": usage.cache_write_tokens,
                            "cache_read_input_tokens": usage.cache_read_tokens}
    if usage.web_searches is not None:
        body["server_tool_use"] = {"web_search_requests": usage.web_searches, "web_fetch_requests": 0}
    if usage.credits is not None:
        body["kiro_credits"] = usage.credits
    return body


def _tool_input(raw: str, name: str) -> dict[str, Any]:
    """The assembled argument JSON as an object; {} (logged) when the upstream sent something else."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        log.warning("tool call %s arrived with arguments that are not valid JSON; sending {}", name)
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class EventStream:
    """Stream state: the message id, the open content block and its index, the thinking signature."""

    model: str
    id: str = field(default_factory=message_id)
    _index: int = -1
    _open: str | None = None
    _signature: str | None = None

    def start(self, input_estimate: int) -> list[Event]:
        """`message_start` (input tokens estimated; message_delta carries the final figure) and a ping."""
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": input_estimate, "output_tokens": 0,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}), PING]

    def part(self, part: Part) -> list[Event]:
        """The events one answer part becomes, opening and closing blocks as needed."""
        if isinstance(part, TextPart):
            return self._ensure("text", {"type": "text", "text": ""}) + [
                self._delta({"type": "text_delta", "text": part.text})]
        if isinstance(part, ReasoningPart):
            events = self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            self._signature = part.signature or self._signature
            return events + [self._delta({"type": "thinking_delta", "thinking": part.text})] if part.text else events
        if isinstance(part, RedactedReasoningPart):
            block = {"type": "redacted_thinking", "data": part.data}
            return self._close() + self._open_block("redacted_thinking", block) + self._close()
        if isinstance(part, ToolStart):
            block = {"type": "tool_use", "id": part.tool_use_id, "name": part.name, "input": {}}
            return self._close() + self._open_block("tool_use", block)
        if isinstance(part, ToolArgs):
            return [self._delta({"type": "input_json_delta", "partial_json": part.fragment})]
        if isinstance(part, ToolEnd):
            return self._close()
        if isinstance(part, SearchCall):  # opened empty, its input as one delta, as Anthropic streams it
            block = {**use_block(part), "input": {}}
            return self._close() + self._open_block("server_tool_use", block) + [
                self._delta({"type": "input_json_delta", "partial_json": json.dumps({"query": part.query})})
            ] + self._close()
        if isinstance(part, SearchDone):
            return self._close() + self._open_block("web_search_tool_result", done_block(part)) + self._close()
        return []

    def finish(self, answer: Answer) -> list[Event]:
        """Close the open block, then `message_delta` (stop reason, final usage) and `message_stop`."""
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
                 "usage": usage_dict(answer.usage)}
        return self._close() + [("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    def cut(self, answer: Answer) -> list[Event]:
        """After an `error` event: close the open block and end the message as cut short (`max_tokens`).

        The usage carries only the output so far; message_start's input estimate stands.
        """
        delta = {"type": "message_delta", "delta": {"stop_reason": MAX_TOKENS, "stop_sequence": None},
                 "usage": {"output_tokens": answer.usage.output_tokens}}
        return self._close() + [("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    def events(self, answer: Answer, upstream_events: Iterable[object]) -> Iterator[Event]:
        """The whole event sequence, each part's events as soon as the part arrives."""
        yield from self.start(answer.prompt_estimate)
        for part in answer.parts(upstream_events):
            yield from self.part(part)
        yield from self.finish(answer)

    def _ensure(self, kind: str, block: dict[str, Any]) -> list[Event]:
        if self._open == kind:
            return []
        return self._close() + self._open_block(kind, block)

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[Event]:
        self._index += 1
        self._open = kind
        return [("content_block_start", {"type": "content_block_start", "index": self._index,
                                         "content_block": block})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        events: list[Event] = []
        if self._open == "thinking":  # always, as Anthropic does: some clients read the signature only here
            events.append(self._delta({"type": "signature_delta", "signature": self._signature or ""}))
        self._open, self._signature = None, None
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        return events


def collect_message(answer: Answer, events: Iterable[object], model: str) -> dict[str, Any]:
    """Consume the whole answer and return one Anthropic `message` object."""
    content: list[dict[str, Any]] = []
    raw_args: dict[int, str] = {}  # content position -> argument JSON so far
    position: dict[int, int] = {}  # tool index -> content position
    for part in answer.parts(events):
        last = content[-1] if content else None
        if isinstance(part, TextPart):
            if last is not None and last["type"] == "text":
                last["text"] += part.text
            else:
                content.append({"type": "text", "text": part.text})
        elif isinstance(part, ReasoningPart):
            if last is None or last["type"] != "thinking":
                last = {"type": "thinking", "thinking": "", "signature": ""}
                content.append(last)
            last["thinking"] += part.text
            last["signature"] = part.signature or last["signature"]
        elif isinstance(part, RedactedReasoningPart):
            content.append({"type": "redacted_thinking", "data": part.data})
        elif isinstance(part, ToolStart):
            content.append({"type": "tool_use", "id": part.tool_use_id, "name": part.name, "input": {}})
            position[part.index] = len(content) - 1
            raw_args[len(content) - 1] = ""
        elif isinstance(part, ToolArgs):
            raw_args[position[part.index]] += part.fragment
        elif isinstance(part, SearchCall):
            content.append(use_block(part))
        elif isinstance(part, SearchDone):
            content.append(done_block(part))
    for at, raw in raw_args.items():
        content[at]["input"] = _tool_input(raw, content[at]["name"])
    return {"id": message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence,
            "usage": usage_dict(answer.usage)}
