"""OpenAI Responses API request (`POST /v1/responses`) -> validated options plus a neutral Conversation.

`input` is a string or a list of items: messages (`input_text`, `input_image`, `output_text` parts), the
function calls of earlier answers with their outputs, reasoning items given back, and ki2api's own compaction
items (responses_compact.py). Items of an earlier stored response (`previous_response_id`) come first; the
route fetches them. Function tools are Kiro tools; the hosted tool types a client sends by habit are ignored
(IGNORED_TOOLS), any other type is refused naming it; the web search among them lets the model search
(translate/search_loop.py, `responses_options`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest
from .history import Conversation, Turn
from .images import from_data_url
from .openai_request import EFFORT_BUDGETS, split_thinking_suffix, thinking_budget
from .openai_tools import apply_tool_choice, parse_tools, tool_result, tool_uses
from .reasoning_items import decode_reasoning, reasoning_signature
from .responses_response import new_id
from .tools import ToolNames

# Hosted tools ki2api cannot run; a client that always offers them (Codex offers web_search) still works
# without them, so they are dropped rather than refused.
IGNORED_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                           "web_search_preview_2025_03_11", "image_generation"})
_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
NAMESPACE_JOIN = "__"
_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs",
                "compaction": "cmp", "web_search_call": "ws"}
COMPACTION_PREFIX = "Summary of the earlier conversation (compacted by ki2api):\n"


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


@dataclass
class ResponsesOptions:
    """What shapes the answer and the stored response; `model` is the client's name as sent."""

    model: str
    stream: bool = False
    store: bool = True
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    thinking_budget: int | None = None
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response object repeats

    @property
    def base_model(self) -> str:
        """The model name without a `-thinking` suffix."""
        return split_thinking_suffix(self.model)[0]


def _optional(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
        raise _fail(f"'{key}' must be {what}", key)
    return value


def reasoning_budget(body: dict[str, Any]) -> int | None:
    """The thinking budget for `reasoning.effort` (or a `-thinking` model); one call, so the native reasoning
    mapping can replace the legacy thinking prompt here alone."""
    reasoning = _optional(body, "reasoning", dict, "an object")
    effort = (reasoning or {}).get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in EFFORT_BUDGETS):
        raise _fail(f"'reasoning.effort' must be one of {', '.join(EFFORT_BUDGETS)}", "reasoning.effort")
    model = body.get("model")
    return thinking_budget({"reasoning_effort": effort, "model": model} if effort else {"model": model})


def parse_options(body: dict[str, Any]) -> ResponsesOptions:
    """Validate the answer-shaping fields; refuse what cannot be honoured with a 400 naming the field."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise _fail("'model' is required and must be a string", "model")
    stream = _optional(body, "stream", bool, "a boolean") or False
    store = _optional(body, "store", bool, "a boolean")
    cap = _optional(body, "max_output_tokens", int, "a positive integer")
    if cap is not None and cap < 1:
        raise _fail("'max_output_tokens' must be a positive integer", "max_output_tokens")
    previous = _optional(body, "previous_response_id", str, "a string")
    metadata = _optional(body, "metadata", dict, "an object of strings")
    if metadata is not None and (len(metadata) > 16 or not all(isinstance(v, str) for v in metadata.values())):
        raise _fail("'metadata' must be an object of at most 16 string values", "metadata")
    if body.get("background"):
        raise _fail("'background' responses are not supported: ask with stream or wait for the answer", "background")
    if body.get("conversation") is not None:
        raise _fail("'conversation' objects are not supported; use previous_response_id", "conversation")
    parallel = _optional(body, "parallel_tool_calls", bool, "a boolean")
    echo = {"instructions": _optional(body, "instructions", (str, list), "a string"),
            "metadata": metadata or {}, "parallel_tool_calls": True if parallel is None else parallel,
            "tool_choice": body.get("tool_choice") or "auto", "text": text_config(body),
            "reasoning": body.get("reasoning"), "max_output_tokens": cap, "previous_response_id": previous,
            "store": True if store is None else store, "truncation": "disabled",
            "temperature": _number(body, "temperature"), "top_p": _number(body, "top_p")}
    return ResponsesOptions(model=body["model"], stream=stream, store=echo["store"], max_output_tokens=cap,
                            previous_response_id=previous, thinking_budget=reasoning_budget(body), echo=echo)


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if value is None:
        return 1.0
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _fail(f"'{key}' must be a number", key)
    return value  # accepted and ignored: Kiro has no sampling controls


def text_config(body: dict[str, Any]) -> dict[str, Any]:
    """`text` as the response repeats it: `{"format": {...}}`, 400 for an unknown format."""
    text = _optional(body, "text", dict, "an object") or {}
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _fail("'text.format.type' must be text, json_object or json_schema", "text.format")
    if fmt["type"] == "json_schema" and (not isinstance(fmt.get("schema"), dict)
                                         or not isinstance(fmt.get("name"), str)):
        raise _fail("'text.format' of type json_schema needs a 'name' and a 'schema' object", "text.format")
    return {**text, "format": fmt}


def format_instruction(fmt: dict[str, Any]) -> str:
    """The note asking for JSON output, since Kiro has no structured-output field ("" for plain text)."""
    if fmt["type"] == "json_object":
        return "[Answer with one valid JSON object only: no prose, no code fences.]"
    if fmt["type"] == "json_schema":
        schema = json.dumps(fmt["schema"], ensure_ascii=False, separators=(",", ":"))
        return ("[Answer with one JSON value only, no prose and no code fences, that conforms to this JSON "
                f"Schema ({fmt['name']}): {schema}]")
    return ""


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message); 400 when it is neither."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list):
        raise _fail("'input' must be a string or a list of input items", "input")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _fail(f"input[{i}] must be an object", f"input[{i}]")
    return raw


def namespaced(namespace: str | None, name: Any) -> Any:
    """The one function name a tool of a `namespace` tool group goes by (Kiro has no namespaces)."""
    return f"{namespace}{NAMESPACE_JOIN}{name}" if namespace else name


def function_tools(tools: Any) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """Responses `tools` as chat-completion function tools, and the names of namespaced ones; the functions of a
    `namespace` group are flattened; hosted tools in IGNORED_TOOLS dropped; any other type a 400."""
    if tools is None:
        return [], {}
    if not isinstance(tools, list):
        raise _fail("'tools' must be a list", "tools")
    out, namespaces = [], {}
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) and isinstance(tool.get("type"), str) else None
        group = tool.get("tools") if kind == "namespace" else [tool]
        if kind in IGNORED_TOOLS:
            continue
        if kind not in ("function", "namespace") or not isinstance(group, list):
            raise _fail(f"tools[{i}]: tool type {kind!r} is not supported by this gateway (only 'function' and "
                        f"'namespace' tools; {', '.join(sorted(IGNORED_TOOLS))} are ignored)", f"tools[{i}].type")
        prefix = tool.get("name") if kind == "namespace" else None
        for member in group:
            if not isinstance(member, dict) or member.get("type", "function") != "function":
                raise _fail(f"tools[{i}]: a namespace holds only function tools", f"tools[{i}].tools")
            name = namespaced(prefix, member.get("name"))
            if prefix:
                namespaces[name] = (prefix, member.get("name"))
            out.append({"type": "function", "function": {"name": name, "description": member.get("description"),
                                                         "parameters": member.get("parameters")}})
    return out, namespaces


def _tool_choice(choice: Any) -> Any:
    """A Responses tool_choice in the chat-completion shape apply_tool_choice reads."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": namespaced(choice.get("namespace"), choice.get("name"))}}
    if isinstance(choice, dict) and str(choice.get("type")) in IGNORED_TOOLS:
        return "auto"
    return choice


def _parts(content: Any, where: str, role: str) -> tuple[str, list[dict[str, Any]]]:
    """(text, Kiro images) of a message's content: a string or a list of input/output parts."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _fail(f"{where} must be a string or a list of content parts", where)
    texts, images = [], []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal", "summary_text"):
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise _fail(f"{here}.text must be a string", f"{here}.text")
            texts.append(text)
        elif kind == "input_image" and role == "user":
            if part.get("file_id"):
                raise _fail(f"{here}: images by file_id are not supported; send a data: URL", here)
            url = part.get("image_url")
            images.append(from_data_url(url.get("url") if isinstance(url, dict) else url, f"{here}.image_url"))
        else:
            raise _fail(f"{here}: content part type {kind!r} is not supported here", here)
    return "\n".join(texts), images


def _output_text(output: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """A function_call_output's `output`: a string, or a list of input_text / input_image parts."""
    if isinstance(output, str):
        return output, []
    return _parts(output, where, "user")


def _turn(item: dict[str, Any], where: str, names: ToolNames) -> tuple[str, Turn | None]:
    """(system text, turn) for one input item; exactly one of them is meaningful."""
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _MESSAGE_ROLES:
            raise _fail(f"{where}.role must be one of {', '.join(_MESSAGE_ROLES)}", f"{where}.role")
        text, images = _parts(item.get("content"), f"{where}.content", role)
        if role in ("system", "developer"):
            return text, None
        return "", Turn(role, text, images=images)
    if kind == "function_call":
        name = namespaced(item.get("namespace"), item.get("name"))
        call = {"id": item.get("call_id"), "function": {"name": name, "arguments": item.get("arguments")}}
        return "", Turn("assistant", tool_uses=tool_uses([call], where, names))
    if kind == "function_call_output":
        text, images = _output_text(item.get("output"), f"{where}.output")
        result = tool_result({"tool_call_id": item.get("call_id")}, text, where)
        return "", Turn("user", images=images, tool_results=[result])
    if kind == "reasoning":
        text, signature = decode_reasoning(item, where), reasoning_signature(item)
        return "", Turn("assistant", reasoning=text, signed_reasoning=(text, signature) if signature else None)
    if kind == "compaction":
        return "", Turn("user", COMPACTION_PREFIX + decode_reasoning(item, where))
    if kind == "web_search_call":  # an earlier search of ki2api's loop, as text (Kiro knows no such item)
        action = item.get("action") if isinstance(item.get("action"), dict) else {}
        query = action.get("query")
        return "", Turn("assistant", f"[searched the web for: {query}]" if isinstance(query, str) else "")
    raise _fail(f"{where}: input item type {kind!r} is not supported", f"{where}.type")


def parse_conversation(body: dict[str, Any], items: list[dict[str, Any]], thinking: int | None) -> Conversation:
    """Instructions, items (earlier ones first), tools, tool_choice and text.format -> a Conversation."""
    names = ToolNames()
    specs, client_names = parse_tools(function_tools(body.get("tools"))[0], names)
    instructions = body.get("instructions")
    system = [instructions] if isinstance(instructions, str) and instructions else []
    if isinstance(instructions, list):  # instructions given as input items (rare): developer messages
        items = input_items({"input": instructions}) + items
    turns = []
    for i, item in enumerate(items):
        text, turn = _turn(item, f"input[{i}]", names)
        if turn is None:
            system.append(text)
        else:
            turns.append(turn)
    if not any(t.role == "user" for t in turns):
        raise _fail("'input' must contain at least one user message or function call output", "input")
    offered, note = apply_tool_choice(_tool_choice(body.get("tool_choice")), specs, client_names, names, turns)
    notes = [n for n in (note, format_instruction(text_config(body)["format"])) if n]
    return Conversation(system="\n\n".join(s for s in system if s), turns=turns, tools=offered, names=names,
                        thinking_budget=thinking, instruction="\n".join(notes))


def tools_echo(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """function_tools' tools as the response object lists them (a namespaced one by its flattened name)."""
    return [{"type": "function", "name": t["function"]["name"], "description": t["function"].get("description"),
             "parameters": t["function"].get("parameters") or {"type": "object", "properties": {}},
             "strict": False} for t in tools]


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as stored and listed: each with an id, a status where OpenAI lists one, and a message's
    string content as one text part."""
    out = []
    for item in items:
        kind = item.get("type", "message")
        entry = {"id": new_id(_ID_PREFIXES.get(kind, "item")), **item, "type": kind}
        if kind in ("message", "function_call", "function_call_output"):
            entry.setdefault("status", "completed")
        if kind == "message" and isinstance(entry.get("content"), str):
            part = "output_text" if entry.get("role") == "assistant" else "input_text"
            entry["content"] = [{"type": part, "text": entry["content"]}]
        out.append(entry)
    return out
