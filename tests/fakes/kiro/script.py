"""Response specs for the fake Kiro: checking them and turning one into the frames to send (no I/O).

A spec is a dict; every key is optional and {} is the default answer (initial-response, "Hello! I am the
fake Kiro." in four assistantResponseEvent frames, contextUsageEvent 1.5, meteringEvent).
- status (200), json (body of a non-200 answer, or of a 200 with fault non_eventstream), headers (extra).
- The frames, one of: texts (list of str), events ([{"event", "payload"} | {"exception", "message"} |
  {"error", "message"}]), fixture ("06", "14", "16": the captured bytes, exactly), or frames_count + frame_bytes
  (N text frames of B bytes each). Generated streams start with initial-response unless initial_response is false.
- reasoning (list of str): reasoningContentEvent frames before the answer, one {"text"} per piece, then one
  {"signature"} the fake issues for their whole text (reasoning.py); redacted_reasoning (true): a
  reasoningContentEvent {"redactedContent"} the fake issues, before those.
- context_usage: texts/frames_count end with contextUsageEvent (default 1.5) + meteringEvent; None drops both.
  "auto": the percentage Kiro would report for the request: its conversationState's characters / 3.1 plus
  HIDDEN_PROMPT_TOKENS (Kiro's own system prompt), over the model's maxInputTokens (server.auto_usage).
  events get them only when context_usage is given. credits: that meteringEvent's `usage` (default 0.01).
- token_usage: a metadataEvent {"tokenUsage": ...} before those, with these input figures
  (uncachedInputTokens, cacheReadInputTokens, cacheWriteInputTokens; outputTokens and totalTokens are added).
  A request with cache points gets the fake's prompt cache's figures (cache.py) unless the spec gives some.
- first_delay (s before the first frame), pace (s between writes: frames, or chunk_size pieces), chunk_size,
  hold_after (N frames, then wait for /_control/release), repeat (requests answered, default 1).
- suspended: true answers as Kiro answers an account it has suspended: HTTP 403 with reason
  TEMPORARILY_SUSPENDED (or, with suspended: "locked", HTTP 423 Locked), whatever else the spec says.
- account: the spec answers (or, sent to /_control/default, is the default of) only that named account's
  requests (state "accounts": [{"name", "access_tokens", "refresh_token", "usage", "default", "models"}];
  "models" is the account's ListAvailableModels list, see models.py).
- fault with fault_after (frames sent first, counting initial-response; default 1): reset_before, reset_after,
  stall, truncate, bad_crc (that frame's message CRC is flipped), non_eventstream, unknown_event (a mysteryEvent
  frame right after initial-response).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tests.fakes.kiro.frames import (bulk_text_frames, encode_frame, exception_frame, flip_crc, initial_response_frame,
                                     json_frame, split_frames, text_frame)
from tests.fakes.kiro.reasoning import redacted_data, sign
from tests.helpers.fixtures import capture_stream

FIXTURE_NAMES = ("06", "14", "16")
DEFAULT_TEXTS = ("Hello!", " I am", " the fake", " Kiro.")
DEFAULT_CONTEXT_USAGE = 1.5
METERING = {"unit": "credit", "unitPlural": "credits", "usage": 0.01}
FAULTS = frozenset({"reset_before", "reset_after", "stall", "truncate", "bad_crc", "non_eventstream",
                    "unknown_event"})
_NUMBERS = {"first_delay", "pace", "context_usage", "credits"}
_COUNTS = {"chunk_size", "hold_after", "repeat", "fault_after", "frames_count", "frame_bytes"}
SPEC_KEYS = frozenset(_NUMBERS | _COUNTS | {"status", "json", "headers", "texts", "events", "fixture", "fault",
                                            "initial_response", "account", "reasoning", "redacted_reasoning",
                                            "suspended", "token_usage"})
# What Kiro answers an account it suspended (the wording account managers match; protocol notes, section 10).
SUSPENDED = {"__type": "com.amazon.kiro.runtimeservice#AccessDeniedException", "reason": "TEMPORARILY_SUSPENDED",
             "message": "Your User ID temporarily is suspended. We've locked your account as a security precaution."}
LOCKED = {"message": "Locked: the account is locked."}


class SpecError(ValueError):
    """A response spec the fake cannot follow; the control API answers 400 with the message."""


@dataclass(frozen=True)
class Plan:
    """What to send for one chat request: a plain body (`body` set) or a stream of `frames`."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    frames: list[bytes] = field(default_factory=list)
    first_delay: float = 0.0
    pace: float = 0.0
    chunk_size: int | None = None
    hold_after: int | None = None
    fault: str | None = None
    fault_after: int = 1


def check_spec(spec: Any) -> dict[str, Any]:
    """Return `spec` if the fake can follow it; raise SpecError naming the first problem."""
    if not isinstance(spec, dict):
        raise SpecError(f"a response spec must be an object, got {type(spec).__name__}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SpecError(f"unknown spec keys {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    for key in _NUMBERS & spec.keys():
        if key == "context_usage" and spec[key] == "auto":
            continue
        if spec[key] is not None and not isinstance(spec[key], (int, float)):
            raise SpecError(f"{key} must be a number")
    for key in _COUNTS & spec.keys():
        if not isinstance(spec[key], int) or spec[key] < 0:
            raise SpecError(f"{key} must be a non-negative integer")
    if spec.get("fault") is not None and spec["fault"] not in FAULTS:
        raise SpecError(f"unknown fault {spec['fault']!r}; known: {sorted(FAULTS)}")
    if "fixture" in spec and spec["fixture"] not in FIXTURE_NAMES:
        raise SpecError(f"unknown fixture {spec['fixture']!r}; known: {list(FIXTURE_NAMES)}")
    if sum(k in spec for k in ("texts", "events", "fixture", "frames_count")) > 1:
        raise SpecError("give only one of texts, events, fixture, frames_count")
    if ("frames_count" in spec) != ("frame_bytes" in spec):
        raise SpecError("frames_count and frame_bytes go together")
    if spec.get("suspended") not in (None, True, "locked"):
        raise SpecError("suspended must be true or \"locked\"")
    if spec.get("chunk_size") == 0 or spec.get("repeat") == 0:
        raise SpecError("chunk_size and repeat must be at least 1")
    usage = spec.get("token_usage", {})
    if not isinstance(usage, dict) or not all(isinstance(n, int) and n >= 0 for n in usage.values()):
        raise SpecError("token_usage must be an object of non-negative integers")
    reasoning = spec.get("reasoning", [])
    if not isinstance(reasoning, list) or not all(isinstance(piece, str) for piece in reasoning):
        raise SpecError("reasoning must be a list of strings")
    for event in spec.get("events", []):
        if not isinstance(event, dict) or not ({"event", "exception", "error"} & event.keys()):
            raise SpecError(f"an event needs 'event', 'exception' or 'error': {event!r}")
    return spec


def plan_response(spec: dict[str, Any], model_id: str) -> Plan:
    """Turn a checked spec into the status, headers and bytes or frames to send for one request."""
    if spec.get("suspended"):
        locked = spec["suspended"] == "locked"
        body = json.dumps(LOCKED if locked else SUSPENDED).encode()
        return Plan(status=423 if locked else 403, headers={}, body=body)
    status = spec.get("status", 200)
    headers = {str(k): str(v) for k, v in spec.get("headers", {}).items()}
    fault = spec.get("fault")
    if status != 200 or fault == "non_eventstream":
        return Plan(status=status, headers=headers, body=_plain_body(spec), fault=fault)
    frames = _frames(spec, model_id)
    fault_after = spec.get("fault_after", 1)
    if fault == "bad_crc" and fault_after < len(frames):
        frames[fault_after] = flip_crc(frames[fault_after])
    return Plan(status=200, headers=headers, frames=frames, first_delay=spec.get("first_delay", 0.0),
                pace=spec.get("pace", 0.0), chunk_size=spec.get("chunk_size"), hold_after=spec.get("hold_after"),
                fault=fault, fault_after=fault_after)


def _plain_body(spec: dict[str, Any]) -> bytes:
    if "json" in spec:
        return json.dumps(spec["json"]).encode()
    if spec.get("status", 200) == 200:
        return b"<html><body>Service Unavailable</body></html>"
    return json.dumps({"message": "scripted error"}).encode()


def _frames(spec: dict[str, Any], model_id: str) -> list[bytes]:
    if "fixture" in spec:
        return split_frames(fixture_bytes(spec["fixture"]))
    frames = [initial_response_frame()] if spec.get("initial_response", True) else []
    if spec.get("fault") == "unknown_event":
        frames.append(json_frame("mysteryEvent", {"mystery": True}))
    frames += _reasoning_frames(spec)
    if "events" in spec:
        frames += [_event(e) for e in spec["events"]]
        usage = spec.get("context_usage")
    elif "frames_count" in spec:
        frames += bulk_text_frames(spec["frames_count"], spec["frame_bytes"], model_id)
        usage = spec.get("context_usage", DEFAULT_CONTEXT_USAGE)
    else:
        frames += [text_frame(t, model_id) for t in spec.get("texts", DEFAULT_TEXTS)]
        usage = spec.get("context_usage", DEFAULT_CONTEXT_USAGE)
    if spec.get("token_usage"):
        frames.append(json_frame("metadataEvent", {"tokenUsage": _token_usage(spec)}))
    if usage is not None:
        frames += [json_frame("contextUsageEvent", {"contextUsagePercentage": usage}),
                   json_frame("meteringEvent", {**METERING, "usage": spec.get("credits", METERING["usage"])})]
    return frames


def _token_usage(spec: dict[str, Any]) -> dict[str, int]:
    """The metadataEvent's tokenUsage: the spec's input figures, the answer text's tokens as outputTokens."""
    figures = {"uncachedInputTokens": 0, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0,
               **spec["token_usage"]}
    texts = spec.get("texts", DEFAULT_TEXTS) if not {"events", "fixture", "frames_count"} & spec.keys() else ()
    output = figures.pop("outputTokens", max(1, round(len("".join(texts)) / 3.1)))
    inputs = figures["uncachedInputTokens"] + figures["cacheReadInputTokens"] + figures["cacheWriteInputTokens"]
    return {**figures, "outputTokens": output, "totalTokens": inputs + output}


def _reasoning_frames(spec: dict[str, Any]) -> list[bytes]:
    frames = []
    pieces = spec.get("reasoning") or []
    if spec.get("redacted_reasoning"):
        frames.append(json_frame("reasoningContentEvent", {"redactedContent": redacted_data("".join(pieces))}))
    frames += [json_frame("reasoningContentEvent", {"text": piece}) for piece in pieces]
    if pieces:
        frames.append(json_frame("reasoningContentEvent", {"signature": sign("".join(pieces))}))
    return frames


def _event(event: dict[str, Any]) -> bytes:
    if "exception" in event:
        return exception_frame(event["exception"], event.get("message", ""))
    if "error" in event:
        headers = {":error-code": event["error"], ":error-message": event.get("message", ""),
                   ":message-type": "error"}
        return encode_frame(headers, b"")
    return json_frame(event["event"], event.get("payload", {}))


@lru_cache(maxsize=None)
def fixture_bytes(name: str) -> bytes:
    """The raw captured response bytes of fixture `name`."""
    return capture_stream(name)
