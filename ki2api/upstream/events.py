"""Kiro's event-stream frames -> typed events the translators understand.

Only what changes the answer is kept: text, tool-call pieces, reasoning,
context usage, token usage and metering. Bookkeeping events
(`initial-response`, `messageMetadataEvent`, follow-up prompts ...) are skipped.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Union

import orjson

from .eventstream import EventStreamDecoder, EventStreamError, Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseDelta:
    """A piece of one tool call: the first piece names it, `input` pieces concatenate to JSON."""

    tool_use_id: str
    name: str
    input: str = ""
    stop: bool = False


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class ContextUsage:
    percentage: float


CREDIT_UNITS = ("credit", "credits")  # meteringEvent's unit for Kiro credits (the captured answers say "credit")


@dataclass(frozen=True, slots=True)
class Metering:
    usage: float
    unit: str

    @property
    def credits(self) -> float | None:
        """The credits this event charges; None if its unit is not credits."""
        return self.usage if self.unit in CREDIT_UNITS else None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class LengthExceeded:
    """The upstream stopped because the answer hit its length limit."""


@dataclass(frozen=True, slots=True)
class Silence:
    """Kiro said nothing for the keep-alive interval (only when the stream was read with one): time to tell the
    client the answer is still coming. Passed on as it is by the translators (SILENCE, compared with `is`)."""


SILENCE = Silence()
Event = Union[TextDelta, ToolUseDelta, ReasoningDelta, ContextUsage, Metering, TokenUsage, LengthExceeded, Silence]


# What comes with any answer, but is none: held back until something of the answer arrives.
_BOOKKEEPING = (ContextUsage, Metering, TokenUsage)
NOT_AN_EVENT_STREAM = "Kiro answered 200 with a body that is not an event stream"
NO_ANSWER = "Kiro answered 200 without an answer"


class NoAnswer(EventStreamError):
    """A 200 that carries no answer: a body that is not an event stream, or frames without any content."""


class UpstreamException(Exception):
    """An error the upstream reported inside a 200 stream (exception/error frame, invalidStateEvent)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _loads(payload: bytes) -> Any:
    """orjson (a fifth of json.loads's time per frame); what it refuses, json decides, as before."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload.decode("utf-8"))


def _json(frame: Frame) -> dict[str, Any]:
    try:
        body = _loads(frame.payload) if frame.payload else {}
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise EventStreamError(f"{frame.event_type or frame.message_type} frame carries invalid JSON") from None
    if not isinstance(body, dict):
        raise EventStreamError(f"{frame.event_type} frame payload is not a JSON object")
    nested = body.get(frame.event_type or "")
    return nested if isinstance(nested, dict) else body


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _number(value: Any) -> float | None:
    """A finite float from a JSON number; None for anything else (NaN, Infinity and huge ints included)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _text(body: dict[str, Any]) -> Event | None:
    content = body.get("content")
    return TextDelta(content) if isinstance(content, str) and content else None


def _tool(body: dict[str, Any]) -> Event | None:
    tool_id, name = body.get("toolUseId"), body.get("name")
    if not isinstance(tool_id, str) or not isinstance(name, str):
        raise EventStreamError("toolUseEvent without toolUseId or name")
    piece = body.get("input", "")
    if isinstance(piece, (dict, list)):
        piece = json.dumps(piece, ensure_ascii=False)
    return ToolUseDelta(tool_id, name, piece if isinstance(piece, str) else "", body.get("stop") is True)


def _reasoning(body: dict[str, Any]) -> Event | None:
    text, redacted, signature = body.get("text"), body.get("redactedContent"), body.get("signature")
    text = text if isinstance(text, str) else ""
    redacted = redacted if isinstance(redacted, str) and redacted else None
    signature = signature if isinstance(signature, str) and signature else None
    if not text and not redacted and not signature:  # a signature may come alone, after the text
        return None
    return ReasoningDelta(text, signature, redacted)


def _context(body: dict[str, Any]) -> Event | None:
    pct = _number(body.get("contextUsagePercentage"))
    return ContextUsage(pct) if pct is not None and pct >= 0 else None


def _metering(body: dict[str, Any]) -> Event | None:
    usage = _number(body.get("usage"))
    return Metering(usage, str(body.get("unit", ""))[:40]) if usage is not None else None


def _metadata(body: dict[str, Any]) -> Event | None:
    usage = body.get("tokenUsage")
    if not isinstance(usage, dict):
        return None
    return TokenUsage(_int(usage.get("uncachedInputTokens")), _int(usage.get("outputTokens")),
                      _int(usage.get("cacheReadInputTokens")), _int(usage.get("cacheWriteInputTokens")))


def _invalid_state(body: dict[str, Any]) -> Event | None:
    raise UpstreamException(str(body.get("reason") or "InvalidState"), str(body.get("message") or "invalid state"))


_HANDLERS = {
    "assistantResponseEvent": _text,
    "toolUseEvent": _tool,
    "reasoningContentEvent": _reasoning,
    "contextUsageEvent": _context,
    "meteringEvent": _metering,
    "metadataEvent": _metadata,
    "invalidStateEvent": _invalid_state,
}


def parse_frame(frame: Frame) -> Event | None:
    """Turn one frame into an event, None for frames that carry nothing for the client."""
    if frame.message_type in ("exception", "error"):
        kind = frame.exception_type or "UnknownError"
        if kind == "ContentLengthExceededException":
            return LengthExceeded()
        try:
            message = str(_json(frame).get("message") or frame.payload[:300].decode("utf-8", "replace"))
        except EventStreamError:
            message = frame.payload[:300].decode("utf-8", "replace")
        raise UpstreamException(kind, message)
    handler = _HANDLERS.get(frame.event_type or "")
    if handler is None:
        if frame.event_type != "initial-response":
            log.debug("skipping upstream event %s", frame.event_type)
        return None
    return handler(_json(frame))


def prime(events: Iterable[Event]) -> Iterator[Event]:
    """Pull the first event now, then yield it and the rest.

    A streaming view calls this before it commits to a 200: whatever goes wrong before the upstream's
    first event (an exception frame, a broken or non-event-stream body, a reset) raises here, while
    the client can still be given a proper error status.
    """
    iterator = iter(events)
    try:
        first = next(iterator)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), iterator)


def iter_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Decode a 200's byte stream into events as soon as each frame is complete.

    Raises NoAnswer when the bytes are not an event stream at all (its first prelude is not one), or when
    the stream ends with nothing of an answer (no text, tool use, reasoning or length stop): context usage
    and metering alone are no answer, so they are held back until an answer event comes, and an empty 200
    fails before the client has been sent anything.
    """
    decoder = EventStreamDecoder()
    held: list[Event] | None = []  # None once the answer has begun
    try:
        for chunk in chunks:
            if not chunk:  # a silence of the keep-alive interval (upstream/reading.py)
                yield SILENCE
                continue
            for frame in decoder.feed(chunk):
                event = parse_frame(frame)
                if event is None:
                    continue
                if held is not None:
                    if isinstance(event, _BOOKKEEPING):
                        held.append(event)
                        continue
                    yield from held
                    held = None
                yield event
        decoder.finish()
    except EventStreamError:
        if not decoder.started:
            raise NoAnswer(NOT_AN_EVENT_STREAM) from None
        raise
    if held is not None:
        raise NoAnswer(NO_ANSWER)
