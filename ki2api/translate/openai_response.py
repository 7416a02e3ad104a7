"""Answer parts -> OpenAI `chat.completion.chunk` objects, or one `chat.completion`."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..upstream.events import SILENCE
from .answer import (END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Answer, ReasoningPart, RedactedReasoningPart,
                     TextPart, ToolArgs, ToolStart, Usage)

FINISH_REASONS = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", TOOL_USE: "tool_calls"}
# OpenAI has no field for a thinking signature: it goes in OpenRouter's `reasoning_details`, which clients
# that replay reasoning already send back (translate/openai_request.detailed_reasoning reads it).
REASONING_FORMAT = "anthropic-claude-v1"


def reasoning_detail(text: str, signature: str, index: int) -> dict[str, Any]:
    """One signed `reasoning.text` entry of `reasoning_details`."""
    return {"type": "reasoning.text", "text": text, "signature": signature, "format": REASONING_FORMAT,
            "index": index}


def redacted_detail(data: str, index: int) -> dict[str, Any]:
    """One `reasoning.encrypted` entry of `reasoning_details`: thinking Kiro sent redacted."""
    return {"type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": index}


def completion_id() -> str:
    """A fresh OpenAI-style completion id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_dict(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object, plus `kiro_credits` when Kiro reported what the answer cost."""
    body = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}
    if usage.credits is not None:
        body["kiro_credits"] = usage.credits
    return body


@dataclass
class ChunkStream:
    """Stream state: the id, the client's model name, and the thinking so far (for its signed detail)."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _reasoning: list[str] = field(default_factory=list)
    _details: int = 0

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        """One chunk with a single choice."""
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _reasoning_chunks(self, part: ReasoningPart) -> Iterator[dict[str, Any]]:
        """The thinking as `reasoning_content`; once signed, the whole of it with its signature."""
        if part.text:
            self._reasoning.append(part.text)
            yield self.chunk({"reasoning_content": part.text})
        if part.signature:
            detail = reasoning_detail("".join(self._reasoning), part.signature, self._details)
            self._reasoning, self._details = [], self._details + 1
            yield self.chunk({"reasoning_details": [detail]})

    def chunks(self, answer: Answer, events: Iterable[object]) -> Iterator[dict[str, Any] | None]:
        """Yield the role chunk, one chunk per answer part as it arrives (None for a SILENCE), the finish chunk,
        and usage."""
        yield self.chunk({"role": "assistant", "content": ""})
        for part in answer.parts(events):
            if isinstance(part, TextPart):
                yield self.chunk({"content": part.text})
            elif isinstance(part, ReasoningPart):
                yield from self._reasoning_chunks(part)
            elif isinstance(part, RedactedReasoningPart):
                self._details += 1
                yield self.chunk({"reasoning_details": [redacted_detail(part.data, self._details - 1)]})
            elif isinstance(part, ToolStart):
                yield self.chunk({"tool_calls": [{"index": part.index, "id": part.tool_use_id, "type": "function",
                                                  "function": {"name": part.name, "arguments": ""}}]})
            elif isinstance(part, ToolArgs):
                yield self.chunk({"tool_calls": [{"index": part.index, "function": {"arguments": part.fragment}}]})
            elif part is SILENCE:
                yield None  # the route's keep-alive
        yield self.chunk({}, FINISH_REASONS[answer.stop_reason])
        if self.include_usage:
            yield {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                   "choices": [], "usage": usage_dict(answer.usage)}


def collect_message(answer: Answer, events: Iterable[object], model: str) -> dict[str, Any]:
    """Consume the whole answer and return one OpenAI `chat.completion` object."""
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    signed_upto = 0  # reasoning[signed_upto:] is the thinking not yet signed
    calls: list[dict[str, Any]] = []
    for part in answer.parts(events):
        if isinstance(part, TextPart):
            text.append(part.text)
        elif isinstance(part, ReasoningPart):
            reasoning.append(part.text)
            if part.signature:
                details.append(reasoning_detail("".join(reasoning[signed_upto:]), part.signature, len(details)))
                signed_upto = len(reasoning)
        elif isinstance(part, RedactedReasoningPart):
            details.append(redacted_detail(part.data, len(details)))
        elif isinstance(part, ToolStart):
            calls.append({"id": part.tool_use_id, "type": "function", "function": {"name": part.name, "arguments": ""}})
        elif isinstance(part, ToolArgs):
            calls[part.index]["function"]["arguments"] += part.fragment
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    if calls:
        for call in calls:
            call["function"]["arguments"] = call["function"]["arguments"] or "{}"
        message["tool_calls"] = calls
    return {"id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": FINISH_REASONS[answer.stop_reason]}],
            "usage": usage_dict(answer.usage)}
