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
from .cut_calls import complete, note
from .search_loop import CallEnd, SearchCall, SearchDone
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


Part = Union[TextPart, ReasoningPart, RedactedReasoningPart, ToolStart, ToolArgs, ToolEnd, Silence, SearchCall,
             SearchDone]

# A typical screenshot's cost (Claude: width x height / 750, about 1,600 for 1.2 megapixels); used only
# when the upstream reports no context usage.
IMAGE_TOKENS = 1600

# What Kiro adds to every request before the model reads it (its own system prompt and framing), in tokens:
# Kiro's context usage exceeds ki2api's estimate of the request by 4,883-5,111 tokens on the captured
# requests (tests/test_usage.py), so the estimate adds this much and lands within 1 % of Kiro's figure.
KIRO_PROMPT_TOKENS = 5000

# Neutral stop reasons use Anthropic's names; the OpenAI layer maps them.
END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE = "end_turn", "max_tokens", "stop_sequence", "tool_use"


@dataclass
class Usage:
    """Token figures for one answer; input is exact only when the upstream reports it.

    `credits`: what Kiro charged for the answer (its meteringEvent), None when it reported nothing (never
    estimated: an answer ki2api stopped reading, at a stop sequence or max_tokens, has no figure).
    `web_searches`: the searches run for the model (translate/search_loop.py), None when it could not search.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    credits: float | None = None
    web_searches: int | None = None


@dataclass
class Answer:
    """Walks the upstream events once; after iteration, stop_reason and usage are final.

    `thinking`: the request turned legacy thinking on, so a leading `<thinking>` block in the
    text becomes ReasoningParts. `names`: the request's tool-name map; ToolStart carries the
    client's tool name. A tool call is held back until it is complete and then given whole (ToolStart, one
    ToolArgs, ToolEnd); a call the answer cut off mid-input is dropped (its name in `cut_calls`), the answer
    ends as max_tokens and a last TextPart tells the model (translate/cut_calls.py).
    The web search loop's events (translate/search_loop.py) pass through as parts, after the text before them;
    at each CallEnd the call's usage is set aside and the next call's added to it.
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
    cut_calls: list[str] = field(default_factory=list)
    _said: bool = False  # some answer text went out
    _held: tuple[str, str, list[str]] | None = None  # the call being read: id, upstream name, input pieces
    _context_pct: float | None = None
    _reported: TokenUsage | None = None
    _output: OutputCounter = field(default_factory=OutputCounter)
    _earlier: Usage = field(default_factory=Usage)  # the usage of the loop's finished calls
    _output_mark: int = 0  # the output counted before the current call

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
            if isinstance(event, (TextDelta, ReasoningDelta)):
                yield from self._settle_tool()  # a call without its stop flag ends where other content begins
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
            elif isinstance(event, (SearchCall, SearchDone)):
                if splitter:
                    yield from self._pieces(splitter.flush(), scanner)
                yield from self._settle_tool()
                yield from self._text(scanner.flush())
                if isinstance(event, SearchDone) and event.error is None:
                    self.usage.web_searches = (self.usage.web_searches or 0) + 1
                yield event
            elif isinstance(event, CallEnd):
                self._next_call(event.prompt_estimate)
        else:
            if splitter:
                yield from self._pieces(splitter.flush(), scanner)
            yield from self._text(scanner.flush())
        yield from self._settle_tool()
        if self.cut_calls:
            self.stop_reason = MAX_TOKENS
            yield from self._text(("\n\n" if self._said else "") + note(self.cut_calls))
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
            self._said = True
            yield TextPart(text)

    def _tool(self, event: ToolUseDelta) -> Iterator[Part]:
        if self._held is None or event.tool_use_id != self._held[0]:
            yield from self._settle_tool()
            self._held = (event.tool_use_id, event.name, [])
            self._count(event.name)
        if event.input:
            self._count(event.input)
            self._held[2].append(event.input)
        if event.stop:
            yield from self._settle_tool()

    def _settle_tool(self) -> Iterator[Part]:
        """Give the held call whole if its input is complete; otherwise drop it as cut off."""
        if self._held is None:
            return
        tool_use_id, upstream_name, pieces = self._held
        self._held = None
        raw = "".join(pieces)
        name = self.names.client(upstream_name) if self.names else upstream_name
        if not complete(raw):
            self.cut_calls.append(name)
            return
        self.tool_count += 1
        yield ToolStart(self.tool_count - 1, tool_use_id, name)
        if raw:
            yield ToolArgs(self.tool_count - 1, raw)
        yield ToolEnd(self.tool_count - 1)

    def _next_call(self, prompt_estimate: int) -> None:
        """Set the finished call's usage aside (the loop's figures are the sums over its calls)."""
        self._settle_usage()
        self._earlier = Usage(self.usage.input_tokens, self.usage.output_tokens, self.usage.cache_read_tokens,
                              self.usage.cache_write_tokens)
        self.usage.cache_read_tokens = self.usage.cache_write_tokens = 0
        self._output_mark, self._reported, self._context_pct = self._output.tokens, None, None
        self.prompt_estimate = prompt_estimate

    def _settle_usage(self) -> None:
        self._settle_call_usage()
        earlier = self._earlier
        self.usage.input_tokens += earlier.input_tokens
        self.usage.output_tokens += earlier.output_tokens
        self.usage.cache_read_tokens += earlier.cache_read_tokens
        self.usage.cache_write_tokens += earlier.cache_write_tokens

    def _settle_call_usage(self) -> None:
        self.usage.output_tokens = self._output.tokens - self._output_mark
        if self._reported is not None:
            self.usage.input_tokens = (self._reported.input_tokens + self._reported.cache_read_tokens
                                       + self._reported.cache_write_tokens)
            self.usage.output_tokens = self._reported.output_tokens or self.usage.output_tokens
            self.usage.cache_read_tokens = self._reported.cache_read_tokens
            self.usage.cache_write_tokens = self._reported.cache_write_tokens
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
    """Estimate the prompt's tokens as Kiro will count them: the upstream request body's text, IMAGE_TOKENS per
    image, and KIRO_PROMPT_TOKENS for what Kiro adds."""
    state, images = _without_images(payload.get("conversationState", {}))
    return estimate_tokens(json.dumps(state, ensure_ascii=False)) + images * IMAGE_TOKENS + KIRO_PROMPT_TOKENS
