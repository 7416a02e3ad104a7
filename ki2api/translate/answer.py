"""Upstream events -> API-neutral answer parts, with stop sequences, max_tokens and usage applied.

The OpenAI and Anthropic response translators both consume these parts, so
cutting at stop strings, the output cap and token accounting live here once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Union

from ..upstream.events import (SILENCE, ContextUsage, LengthExceeded, Metering, ReasoningDelta, Silence, TextDelta,
                               TokenUsage, ToolUseDelta)
from .stops import StopScanner
from .thinking import ThinkingSplitter
from .tools import ToolNames
from .usage import OutputCounter, estimate_tokens, input_tokens_from_context


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class RedactedReasoningPart:
    """Thinking the upstream sent encrypted (`redactedContent`): shown to nobody, given back as it came."""

    data: str


@dataclass(frozen=True, slots=True)
class ToolStart:
    index: int
    tool_use_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgs:
    index: int
    fragment: str


@dataclass(frozen=True, slots=True)
class ToolEnd:
    index: int


Part = Union[TextPart, ReasoningPart, RedactedReasoningPart, ToolStart, ToolArgs, ToolEnd, Silence]

# A typical screenshot's cost (Claude: width x height / 750, about 1,600 for 1.2 megapixels); used only
# when the upstream reports no context usage.
IMAGE_TOKENS = 1600

# Neutral stop reasons use Anthropic's names; the OpenAI layer maps them.
END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE = "end_turn", "max_tokens", "stop_sequence", "tool_use"


@dataclass
class Usage:
    """Token figures for one answer; input is exact only when the upstream reports it.

    `credits`: what Kiro charged for the answer (its meteringEvent), None when it reported nothing (never
    estimated: an answer ki2api stopped reading, at a stop sequence or max_tokens, has no figure).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    credits: float | None = None


@dataclass
class Answer:
    """Walks the upstream events once; after iteration, stop_reason and usage are final.

    `thinking`: the request turned legacy thinking on, so a leading `<thinking>` block in the
    text becomes ReasoningParts. `names`: the request's tool-name map; ToolStart carries the
    client's tool name.
    """

    prompt_estimate: int
    context_window: int
    stops: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    thinking: bool = False
    names: ToolNames | None = None
    stop_reason: str = END_TURN
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_count: int = 0
    _open_tool: str | None = None
    _context_pct: float | None = None
    _reported: TokenUsage | None = None
    _output: OutputCounter = field(default_factory=OutputCounter)

    def parts(self, events: Iterable[object]) -> Iterator[Part]:
        """Yield answer parts as the events arrive; stop early at a stop sequence or max_tokens."""
        try:
            yield from self._parts(events)
        except BaseException:  # the upstream failed or the client left mid-answer: usage = the output so far
            self.usage.output_tokens = self._output.tokens
            raise

    def _parts(self, events: Iterable[object]) -> Iterator[Part]:
        scanner = StopScanner(self.stops)
        splitter = ThinkingSplitter() if self.thinking else None
        for event in events:
            if isinstance(event, TextDelta):
                pieces = splitter.feed(event.text) if splitter else [("text", event.text)]
                yield from self._pieces(pieces, scanner)
                if self._cut():
                    break
            elif isinstance(event, ToolUseDelta):
                if splitter:
                    yield from self._pieces(splitter.flush(), scanner)
                yield from self._text(scanner.flush())
                if self._cut():
                    break
                yield from self._tool(event)
            elif isinstance(event, ReasoningDelta):
                if event.text:
                    self._count(event.text)
                if event.redacted:
                    yield RedactedReasoningPart(event.redacted)
                if event.text or event.signature:  # a signature may come alone, after the text
                    yield ReasoningPart(event.text, event.signature)
            elif isinstance(event, ContextUsage):
                self._context_pct = event.percentage
            elif isinstance(event, TokenUsage):
                self._reported = event
            elif isinstance(event, Metering):
                self._meter(event)
            elif isinstance(event, LengthExceeded):
                self.stop_reason = MAX_TOKENS
            elif event is SILENCE:  # a keep-alive's cue, passed on to the stream
                yield SILENCE
        else:
            if splitter:
                yield from self._pieces(splitter.flush(), scanner)
            yield from self._text(scanner.flush())
        if self._open_tool is not None:
            yield ToolEnd(self.tool_count - 1)
            self._open_tool = None
        if self.tool_count and self.stop_reason == END_TURN:
            self.stop_reason = TOOL_USE
        self._settle_usage()

    def _meter(self, event: Metering) -> None:
        """Add a credit figure (a metering event in another unit is no credit and is not counted)."""
        if event.credits is not None:
            self.usage.credits = round((self.usage.credits or 0.0) + event.credits, 6)

    def _pieces(self, pieces: list[tuple[str, str]], scanner: StopScanner) -> Iterator[Part]:
        """Reasoning goes out as is; answer text through the stop scanner."""
        for kind, text in pieces:
            if kind == "reasoning":
                self._count(text)
                yield ReasoningPart(text)
            elif not scanner.stopped:
                yield from self._text(scanner.feed(text))
                if scanner.stopped:
                    self.stop_reason, self.stop_sequence = STOP_SEQUENCE, scanner.matched

    def _count(self, text: str) -> None:
        """Output is estimated over the whole answer, once, not piece by piece (see usage.py)."""
        self._output.add(text)

    def _cut(self) -> bool:
        if self.stop_reason == STOP_SEQUENCE:
            return True
        if self.max_tokens is not None and self._output.at_least(self.max_tokens):
            self.stop_reason = MAX_TOKENS
            return True
        return False

    def _text(self, text: str) -> Iterator[Part]:
        if text:
            self._count(text)
            yield TextPart(text)

    def _tool(self, event: ToolUseDelta) -> Iterator[Part]:
        if event.tool_use_id != self._open_tool:
            if self._open_tool is not None:
                yield ToolEnd(self.tool_count - 1)
            self._open_tool = event.tool_use_id
            self.tool_count += 1
            self._count(event.name)
            name = self.names.client(event.name) if self.names else event.name
            yield ToolStart(self.tool_count - 1, event.tool_use_id, name)
        if event.input:
            self._count(event.input)
            yield ToolArgs(self.tool_count - 1, event.input)
        if event.stop:
            yield ToolEnd(self.tool_count - 1)
            self._open_tool = None

    def _settle_usage(self) -> None:
        self.usage.output_tokens = self._output.tokens
        if self._reported is not None:
            self.usage.input_tokens = self._reported.input_tokens + self._reported.cache_read_tokens
            self.usage.output_tokens = self._reported.output_tokens or self.usage.output_tokens
            self.usage.cache_read_tokens = self._reported.cache_read_tokens
            return
        self.usage.input_tokens = input_tokens_from_context(
            self._context_pct, self.context_window, self.prompt_estimate)


def _without_images(value: object) -> tuple[object, int]:
    """The value with every `images` list emptied, and how many images there were."""
    if isinstance(value, dict):
        count, out = 0, {}
        for key, item in value.items():
            if key == "images" and isinstance(item, list):
                count += len(item)
                continue
            out[key], sub = _without_images(item)
            count += sub
        return out, count
    if isinstance(value, list):
        pairs = [_without_images(item) for item in value]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    return value, 0


def prompt_estimate(payload: dict) -> int:
    """Estimate the prompt's tokens from the upstream request body: its text, plus IMAGE_TOKENS per image."""
    state, images = _without_images(payload.get("conversationState", {}))
    return estimate_tokens(json.dumps(state, ensure_ascii=False)) + images * IMAGE_TOKENS
