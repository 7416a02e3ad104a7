"""Anthropic Messages request -> validated options plus a neutral Conversation (then Kiro's body).

Every malformed field or content block is an InvalidRequest whose `param` names it
(`messages[2].content[0].source`), so clients get a 400 that says where, never a 500.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from .cache_points import marked
from .history import Conversation, Turn
from .images import kiro_image
from .openai_tools import EMPTY_RESULT, apply_tool_choice  # written once for both APIs (OpenAI-shaped choice)
from .thinking import MAX_BUDGET, MIN_BUDGET
from .tools import MAX_DEPTH, ToolNames, TooDeep, kiro_tool, without_nulls
from .websearch import history_text, is_server_search

log = logging.getLogger(__name__)
# Other fields (temperature, top_p, top_k, metadata ...) are accepted and ignored: Kiro has no such controls
# (docs/api.md). `cache_control` marks become Kiro cache points (translate/cache_points.py).
TOOL_CHOICES = ("auto", "any", "tool", "none")
IMAGE_IN_RESULT = "[image attached below]"


@dataclass
class MessagesOptions:
    """What shapes the answer rather than the prompt."""

    model: str
    max_tokens: int | None = None
    stream: bool = False
    stop_sequences: list[str] = field(default_factory=list)
    thinking_budget: int | None = None


def _fail(message: str, where: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {message}", param=where)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail("must be an object", where)
    return value


def _string(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise _fail("must be a string", f"{where}.{key}")
    return value


def _thinking_budget(value: Any, max_tokens: int | None) -> int | None:
    """The budget asked for by `thinking`; None when thinking is off."""
    if value is None:
        return None
    thinking = _object(value, "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind == "adaptive":
        return MAX_BUDGET if max_tokens is None else max(MIN_BUDGET, min(MAX_BUDGET, max_tokens - 1))
    if kind != "enabled":
        raise _fail("must be 'enabled', 'adaptive' or 'disabled'", "thinking.type")
    budget = thinking.get("budget_tokens")
    if not _positive_int(budget) or budget < MIN_BUDGET:
        raise _fail(f"must be an integer of at least {MIN_BUDGET}", "thinking.budget_tokens")
    if max_tokens is not None and budget >= max_tokens:
        raise _fail("must be less than max_tokens", "thinking.budget_tokens")
    return budget


def parse_options(body: dict[str, Any], *, count_only: bool = False) -> MessagesOptions:
    """Validate the answer-shaping fields; max_tokens is required except for counting tokens."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise _fail("is required and must be a model name", "model")
    max_tokens = body.get("max_tokens")
    if not (count_only and max_tokens is None) and not _positive_int(max_tokens):
        raise _fail("is required and must be a positive integer", "max_tokens")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("must be a boolean", "stream")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _fail("must be a list of strings", "stop_sequences")
    if body.get("metadata") is not None:
        _object(body["metadata"], "metadata")
    return MessagesOptions(model=body["model"], max_tokens=max_tokens, stream=stream,
                           stop_sequences=[s for s in stops if s],
                           thinking_budget=_thinking_budget(body.get("thinking"), max_tokens))


def _system(value: Any) -> tuple[str, bool]:
    """The system text, and whether one of its blocks carries a cache breakpoint."""
    if value is None or isinstance(value, str):
        return value or "", False
    if not isinstance(value, list):
        raise _fail("must be a string or a list of text blocks", "system")
    texts = []
    for i, block in enumerate(value):
        where = f"system[{i}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail("must be a text block ({'type': 'text', 'text': ...})", where)
        texts.append(_string(block, "text", where))
    text = "\n".join(t for t in texts if t)
    return text, bool(text) and any(marked(block) for block in value)


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = _object(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        return kiro_image(source.get("media_type"), source.get("data"), f"{where}.source")
    if kind == "url":
        raise _fail("image URLs are not fetched by this gateway; send the image inline as a base64 source "
                    "({'type': 'base64', 'media_type': 'image/png', 'data': ...})", f"{where}.source")
    raise _fail(f"image source type {kind!r} is not supported; use 'base64'", f"{where}.source.type")


def _tool_result(block: dict[str, Any], where: str, turn: Turn) -> None:
    """Add one tool_result to the user turn: its text as the result, its images to the turn's images."""
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise _fail("is required", f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            inner = f"{where}.content[{j}]"
            kind = _object(part, inner).get("type")
            turn.cache_point = turn.cache_point or marked(part)
            if kind == "text":
                texts.append(_string(part, "text", inner))
            elif kind == "image":
                turn.images.append(_image(part, inner))
                texts.append(IMAGE_IN_RESULT)
            else:
                raise _fail(f"block type {kind!r} is not supported in a tool result; use text or image", inner)
    elif content is not None:
        raise _fail("must be a string or a list of text and image blocks", f"{where}.content")
    status = "error" if block.get("is_error") is True else "success"
    turn.tool_results.append({"toolUseId": tool_use_id, "content": [{"text": "\n".join(texts) or EMPTY_RESULT}],
                              "status": status})


def _tool_use(block: dict[str, Any], where: str, names: ToolNames) -> dict[str, Any]:
    tool_id, name = _string(block, "id", where), _string(block, "name", where)
    if not tool_id or not name:
        raise _fail("a tool_use block needs a non-empty 'id' and 'name'", where)
    tool_input = block.get("input", {})
    if not isinstance(tool_input, dict):
        raise _fail("must be an object", f"{where}.input")
    try:
        clean = without_nulls(tool_input)  # Kiro takes an omitted key, never a null
    except TooDeep:
        raise _fail(f"is nested more than {MAX_DEPTH} levels deep", f"{where}.input") from None
    return {"toolUseId": tool_id, "name": names.upstream(name), "input": clean}


def _block(block: Any, where: str, turn: Turn, names: ToolNames, texts: list[str]) -> None:
    """Fold one content block into the turn; the allowed types depend on the role."""
    kind = _object(block, where).get("type")
    user = turn.role == "user"
    turn.cache_point = turn.cache_point or marked(block)
    if kind == "text":
        texts.append(_string(block, "text", where))
    elif kind == "image" and user:
        turn.images.append(_image(block, where))
    elif kind == "tool_result" and user:
        _tool_result(block, where, turn)
    elif kind == "tool_use" and not user:
        turn.tool_uses.append(_tool_use(block, where, names))
    elif kind in ("server_tool_use", "web_search_tool_result") and not user:
        texts.append(history_text(block))  # an earlier web search (translate/websearch.py), as text
    elif kind == "thinking" and not user:
        thought = _string(block, "thinking", where)
        turn.reasoning = "\n".join(t for t in (turn.reasoning, thought) if t)
        signature = block.get("signature")
        if isinstance(signature, str) and signature and turn.signed_reasoning is None:
            turn.signed_reasoning = (thought, signature)
    elif kind == "redacted_thinking" and not user:
        data = block.get("data")  # Kiro's redactedContent when it came from Kiro; only native models get it back
        if isinstance(data, str) and data and not turn.redacted_reasoning:
            turn.redacted_reasoning = data
    elif not isinstance(kind, str):
        raise _fail("must be an object with a string 'type'", where)
    else:
        raise _fail(f"content block type {kind!r} is not supported in a {turn.role} message", f"{where}.type")


def _turn(message: Any, i: int, names: ToolNames) -> Turn:
    where = f"messages[{i}]"
    message = _object(message, where)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise _fail("must be 'user' or 'assistant'", f"{where}.role")
    content = message.get("content")
    turn = Turn(role)
    if isinstance(content, str):
        turn.text = content
        return turn
    if not isinstance(content, list):
        raise _fail("must be a string or a list of content blocks", f"{where}.content")
    texts: list[str] = []
    for j, block in enumerate(content):
        _block(block, f"{where}.content[{j}]", turn, names, texts)
    turn.text = "\n".join(t for t in texts if t)
    return turn


def _tools(value: Any, names: ToolNames) -> tuple[list[dict[str, Any]], list[str]]:
    """Kiro specs for the client's custom tools and their names; Anthropic's own tools are dropped, logged.
    (A tool's cache breakpoint is read by parse_conversation.)"""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise _fail("must be a list of tools", "tools")
    specs: list[dict[str, Any]] = []
    client_names: list[str] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        tool = _object(tool, where)
        name = _string(tool, "name", where)
        if tool.get("type") not in (None, "custom"):
            if not is_server_search(tool):  # web search is ki2api's to run (translate/search_loop.py)
                log.info("dropping Anthropic-defined tool %r (type %s): Kiro cannot run it", name, tool.get("type"))
            continue
        if not name or name in client_names:
            raise _fail("must be a non-empty name, unique among the tools", f"{where}.name")
        if tool.get("description") is not None and not isinstance(tool["description"], str):
            raise _fail("must be a string", f"{where}.description")
        schema = _object(tool.get("input_schema"), f"{where}.input_schema")
        try:
            specs.append(kiro_tool(name, tool.get("description"), schema, names))
        except TooDeep:
            raise _fail(f"is nested more than {MAX_DEPTH} levels deep", f"{where}.input_schema") from None
        client_names.append(name)
    return specs, client_names


def _tool_choice(value: Any, client_names: list[str]) -> Any:
    """Anthropic's tool_choice, validated, in the OpenAI shape the shared `apply_tool_choice` takes."""
    if value is None:
        return None
    kind = _object(value, "tool_choice").get("type")
    if kind not in TOOL_CHOICES:
        raise _fail(f"must be one of {', '.join(TOOL_CHOICES)}", "tool_choice.type")
    if kind in ("any", "tool") and not client_names:
        raise _fail(f"type {kind!r} needs 'tools' to be given", "tool_choice.type")
    if kind == "tool":
        name = value.get("name")
        if not isinstance(name, str) or name not in client_names:
            raise _fail(f"names a tool that is not among the request's tools: {name!r}", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    return {"type": kind}


def parse_conversation(body: dict[str, Any], thinking_budget: int | None = None) -> Conversation:
    """Turn an Anthropic request body into a neutral Conversation; 400 naming the first malformed part."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("must be a non-empty list", "messages")
    names = ToolNames()
    specs, client_names = _tools(body.get("tools"), names)
    choice = _tool_choice(body.get("tool_choice"), client_names)
    turns = [_turn(message, i, names) for i, message in enumerate(messages)]
    tools, instruction = apply_tool_choice(choice, specs, client_names, names, turns)
    system, system_mark = _system(body.get("system"))
    return Conversation(system=system, turns=turns, tools=tools, names=names,
                        thinking_budget=thinking_budget, instruction=instruction, system_cache_point=system_mark,
                        tools_cache_point=any(marked(tool) for tool in body.get("tools") or ()))
