"""OpenAI chat-completion request -> validated options plus Kiro's request body."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from .history import Conversation, Turn, build_payload

_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Accepted and ignored: the upstream has no such controls (see README, "OpenAI parameters").
IGNORED_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "user",
                  "logit_bias", "metadata", "store", "parallel_tool_calls", "service_tier",
                  "reasoning_effort", "modalities", "prediction", "top_logprobs")


@dataclass
class ChatOptions:
    """What shapes the answer rather than the prompt."""

    model: str
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _text_of(content: Any, param: str) -> str:
    """Content given as a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _fail(f"{param} must be a string or a list of content parts", param)
    texts = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _fail(f"{where} must be an object with a 'type'", where)
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise _fail(f"{where}.text must be a string", f"{where}.text")
            texts.append(part["text"])
        elif part["type"] in ("image_url", "input_audio", "file"):
            raise _fail(f"{where}: content part type {part['type']!r} is not supported here", where)
        else:
            raise _fail(f"{where}: unknown content part type {part['type']!r}", where)
    return "\n".join(texts)


def _tool_uses(calls: Any, param: str) -> list[dict[str, Any]]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _fail(f"{param} must be a list", param)
    uses = []
    for i, call in enumerate(calls):
        where = f"{param}[{i}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
            raise _fail(f"{where} must have an 'id' and a 'function' with a 'name'", where)
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            raise _fail(f"{where}.function.arguments is not valid JSON", f"{where}.function.arguments") from None
        if not isinstance(args, dict):
            raise _fail(f"{where}.function.arguments must encode a JSON object", f"{where}.function.arguments")
        uses.append({"toolUseId": call["id"], "name": fn["name"], "input": args})
    return uses


def _turn(message: Any, i: int) -> tuple[str, Turn | None]:
    """Return (system text, turn) for one message; exactly one of them is meaningful."""
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _fail(f"{where} must be an object", where)
    role = message.get("role")
    if role not in _ROLES:
        raise _fail(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role")
    text = _text_of(message.get("content"), f"{where}.content")
    if role in ("system", "developer"):
        return text, None
    if role == "assistant":
        return "", Turn("assistant", text, tool_uses=_tool_uses(message.get("tool_calls"), f"{where}.tool_calls"))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise _fail(f"{where}.tool_call_id is required for tool messages", f"{where}.tool_call_id")
        result = {"toolUseId": call_id, "content": [{"text": text}], "status": "success"}
        return "", Turn("user", tool_results=[result])
    return "", Turn("user", text)


def parse_options(body: dict[str, Any]) -> ChatOptions:
    """Validate the answer-shaping fields; refuse what cannot be honoured with a 400 naming the field."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise _fail("'model' is required and must be a string", "model")
    n = body.get("n", 1)
    if n not in (None, 1):
        raise _fail("Only n=1 is supported: Kiro returns one answer per request", "n")
    if body.get("logprobs"):
        raise _fail("logprobs are not available from Kiro", "logprobs")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _fail("'stream' must be a boolean", "stream")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) for s in stops):
        raise _fail("'stop' must be a string or a list of at most 4 strings", "stop")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise _fail("'max_tokens' must be a positive integer", "max_tokens")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise _fail("'stream_options' must be an object", "stream_options")
    return ChatOptions(model=body["model"], stream=stream, include_usage=bool(stream_options.get("include_usage")),
                       stop=[s for s in stops if s], max_tokens=max_tokens)


def parse_conversation(body: dict[str, Any]) -> Conversation:
    """Turn OpenAI `messages` into a neutral Conversation; 400 on a malformed message."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' must be a non-empty list", "messages")
    system, turns = [], []
    for i, message in enumerate(messages):
        text, turn = _turn(message, i)
        if turn is None:
            system.append(text)
        else:
            turns.append(turn)
    if not turns:
        raise _fail("'messages' must contain at least one user message", "messages")
    return Conversation(system="\n\n".join(s for s in system if s), turns=turns)


def to_codewhisperer(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    """Return Kiro's request body for an OpenAI chat-completion request body."""
    return build_payload(parse_conversation(body), model_id)
