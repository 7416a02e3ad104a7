"""OpenAI chat-completion request -> validated options plus Kiro's request body."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from .history import Conversation, Turn, build_payload
from .images import from_data_url
from .openai_tools import apply_tool_choice, parse_tools, tool_result, tool_uses
from .tools import ToolNames

_ROLES = {"system", "developer", "user", "assistant", "tool"}
# Accepted and ignored: the upstream has no such controls (see README, "OpenAI parameters").
IGNORED_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "user",
                  "logit_bias", "metadata", "store", "parallel_tool_calls", "service_tier",
                  "modalities", "prediction", "top_logprobs")
THINKING_SUFFIX = "-thinking"
# Thinking budgets (tokens) for OpenAI's reasoning_effort levels; "none" turns thinking off.
EFFORT_BUDGETS: dict[str, int | None] = {"none": None, "minimal": 1024, "low": 4096, "medium": 12288,
                                         "high": 24576, "xhigh": 24576}
DEFAULT_BUDGET = 12288


@dataclass
class ChatOptions:
    """What shapes the answer rather than the prompt; `model` is the client's name as sent."""

    model: str
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    thinking_budget: int | None = None

    @property
    def base_model(self) -> str:
        """The model name without a `-thinking` suffix."""
        return split_thinking_suffix(self.model)[0]


def split_thinking_suffix(model: str) -> tuple[str, bool]:
    """('claude-x', True) for 'claude-x-thinking'; the name unchanged and False otherwise."""
    if model.lower().endswith(THINKING_SUFFIX) and len(model) > len(THINKING_SUFFIX):
        return model[: -len(THINKING_SUFFIX)], True
    return model, False


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _content(content: Any, param: str, images_ok: bool) -> tuple[str, list[dict[str, Any]]]:
    """(text, Kiro images) of content given as a string, null, or a list of parts."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _fail(f"{param} must be a string or a list of content parts", param)
    texts, images = [], []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _fail(f"{where} must be an object with a 'type'", where)
        kind = part["type"]
        if kind in ("text", "refusal"):
            if not isinstance(part.get(kind), str):
                raise _fail(f"{where}.{kind} must be a string", f"{where}.{kind}")
            texts.append(part[kind])
        elif kind == "image_url" and images_ok:
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(from_data_url(url, f"{where}.image_url.url"))
        elif kind in ("image_url", "input_audio", "file"):
            raise _fail(f"{where}: content part type {kind!r} is not supported here", where)
        else:
            raise _fail(f"{where}: unknown content part type {kind!r}", where)
    return "\n".join(texts), images


def _turn(message: Any, i: int, names: ToolNames) -> tuple[str, Turn | None]:
    """Return (system text, turn) for one message; exactly one of them is meaningful."""
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _fail(f"{where} must be an object", where)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:  # a dict or list role is not hashable: check first
        raise _fail(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role")
    # Images in a tool message (a screenshot a tool returned) travel on the user turn holding the result.
    text, images = _content(message.get("content"), f"{where}.content", images_ok=role in ("user", "tool"))
    if role in ("system", "developer"):
        return text, None
    if role == "assistant":
        reasoning = message.get("reasoning_content") or ""
        if not isinstance(reasoning, str):
            raise _fail(f"{where}.reasoning_content must be a string", f"{where}.reasoning_content")
        uses = tool_uses(message.get("tool_calls"), f"{where}.tool_calls", names)
        signed, redacted = detailed_reasoning(message.get("reasoning_details"), f"{where}.reasoning_details")
        return "", Turn("assistant", text, tool_uses=uses, reasoning=reasoning, signed_reasoning=signed,
                        redacted_reasoning=redacted)
    if role == "tool":
        return "", Turn("user", images=images, tool_results=[tool_result(message, text, where)])
    return "", Turn("user", text, images=images)


def detailed_reasoning(details: Any, param: str) -> tuple[tuple[str, str] | None, str]:
    """From OpenRouter-style `reasoning_details`: (text, signature) of the first signed `reasoning.text` entry,
    and the `data` of the first `reasoning.encrypted` one ("" for none)."""
    if details is None:
        return None, ""
    if not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
        raise _fail(f"{param} must be a list of objects", param)
    signed, redacted = None, ""
    for detail in details:
        kind, text, signature, data = (detail.get(k) for k in ("type", "text", "signature", "data"))
        if kind == "reasoning.text" and isinstance(text, str) and isinstance(signature, str) and signature:
            signed = signed or (text, signature)
        elif kind == "reasoning.encrypted" and isinstance(data, str) and data:
            redacted = redacted or data
    return signed, redacted


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
                       stop=[s for s in stops if s], max_tokens=max_tokens, thinking_budget=thinking_budget(body))


def _budget_of(value: Any, param: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(f"'{param}' must be a positive integer", param)
    return value


def _effort_budget(effort: Any, param: str) -> int | None:
    if not isinstance(effort, str) or effort not in EFFORT_BUDGETS:
        raise _fail(f"'{param}' must be one of {', '.join(EFFORT_BUDGETS)}", param)
    return EFFORT_BUDGETS[effort]


def thinking_budget(body: dict[str, Any]) -> int | None:
    """The thinking budget the request asks for, None for no thinking (see README, "Thinking")."""
    thinking, reasoning = body.get("thinking"), body.get("reasoning")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise _fail("'thinking' must be {\"type\": \"enabled\", \"budget_tokens\": N} or "
                        "{\"type\": \"disabled\"}", "thinking")
        if thinking["type"] == "disabled":
            return None
        budget = thinking.get("budget_tokens")
        return DEFAULT_BUDGET if budget is None else _budget_of(budget, "thinking.budget_tokens")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _fail("'reasoning' must be an object", "reasoning")
        if reasoning.get("enabled") is False:
            return None
        if reasoning.get("max_tokens") is not None:
            return _budget_of(reasoning["max_tokens"], "reasoning.max_tokens")
        if reasoning.get("effort") is not None:
            return _effort_budget(reasoning["effort"], "reasoning.effort")
        return DEFAULT_BUDGET
    if body.get("reasoning_effort") is not None:
        return _effort_budget(body["reasoning_effort"], "reasoning_effort")
    model = body.get("model")
    return DEFAULT_BUDGET if isinstance(model, str) and split_thinking_suffix(model)[1] else None


def parse_conversation(body: dict[str, Any]) -> Conversation:
    """Turn OpenAI `messages`, `tools` and `tool_choice` into a neutral Conversation; 400 when malformed."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' must be a non-empty list", "messages")
    names = ToolNames()
    specs, client_names = parse_tools(body.get("tools"), names)
    system, turns = [], []
    for i, message in enumerate(messages):
        text, turn = _turn(message, i, names)
        if turn is None:
            system.append(text)
        else:
            turns.append(turn)
    if not turns:
        raise _fail("'messages' must contain at least one user message", "messages")
    offered, note = apply_tool_choice(body.get("tool_choice"), specs, client_names, names, turns)
    return Conversation(system="\n\n".join(s for s in system if s), turns=turns, tools=offered, names=names,
                        thinking_budget=thinking_budget(body), instruction=note)


def to_codewhisperer(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    """Return Kiro's request body for an OpenAI chat-completion request body."""
    return build_payload(parse_conversation(body), model_id)
