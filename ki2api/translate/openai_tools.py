"""OpenAI `tools`, `tool_choice`, assistant `tool_calls` and `tool` messages -> Kiro's shapes.

Kiro has no tool_choice field. ki2api expresses it with the tool list it offers and a
note appended to the current message (`tools.choice_instruction`):
- `auto` (default): every tool offered, no note.
- `none`: only tools already used in the conversation stay declared (Kiro requires it),
  plus a note to answer in text.
- `required`: every tool offered, plus a note that a tool must be called.
- `{"type": "function", "function": {"name": N}}`: only N offered (and the tools used
  earlier, which must stay declared), plus a note that N must be called.
"""
from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest
from .history import Turn
from .tools import MAX_DEPTH, ToolNames, TooDeep, choice_instruction, kiro_tool, loads_finite, without_nulls

EMPTY_RESULT = "(no output)"


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def parse_tools(tools: Any, names: ToolNames) -> tuple[list[dict[str, Any]], list[str]]:
    """Kiro tool specs for OpenAI `tools`, and the client names in order; 400 on a malformed tool."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise _fail("'tools' must be a list", "tools")
    specs, client_names = [], []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _fail(f"{where} must be an object with type 'function' (other tool types are not supported)",
                        where)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise _fail(f"{where}.function must be an object with a non-empty 'name'", f"{where}.function.name")
        if fn["name"] in client_names:
            raise _fail(f"{where}: the tool name {fn['name']!r} is declared twice", f"{where}.function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _fail(f"{where}.function.parameters must be a JSON Schema object", f"{where}.function.parameters")
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise _fail(f"{where}.function.description must be a string", f"{where}.function.description")
        try:
            specs.append(kiro_tool(fn["name"], description, params, names))
        except TooDeep:
            raise _fail(f"{where}.function.parameters is nested more than {MAX_DEPTH} levels deep",
                        f"{where}.function.parameters") from None
        client_names.append(fn["name"])
    return specs, client_names


def _choice_kind(choice: Any) -> tuple[str, str | None]:
    """(kind, function name) for a tool_choice: auto, none, any or tool."""
    if choice is None:
        return "auto", None
    kind = choice.get("type") if isinstance(choice, dict) else choice
    if kind in ("auto", "none"):
        return kind, None
    if kind in ("required", "any"):
        return "any", None
    if kind == "function" and isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name:
            return "tool", name
    raise _fail("'tool_choice' must be 'auto', 'none', 'required' or "
                "{\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice")


def apply_tool_choice(choice: Any, specs: list[dict[str, Any]], client_names: list[str], names: ToolNames,
                      turns: list[Turn]) -> tuple[list[dict[str, Any]], str]:
    """The tool specs to offer and the note for the current message, per `tool_choice`."""
    kind, wanted = _choice_kind(choice)
    if kind == "auto":
        return specs, ""
    if kind in ("any", "tool") and not specs:
        raise _fail(f"tool_choice {choice!r} needs 'tools' to be given", "tool_choice")
    used = {use["name"] for turn in turns for use in turn.tool_uses}
    history_specs = [s for s in specs if s["toolSpecification"]["name"] in used]
    if kind == "none":
        return history_specs, choice_instruction("none") if specs or used else ""
    if kind == "any":
        return specs, choice_instruction("any")
    if wanted not in client_names:
        raise _fail(f"tool_choice names the function {wanted!r}, which is not in 'tools'", "tool_choice")
    upstream = names.upstream(wanted)
    offered = [s for s in specs if s["toolSpecification"]["name"] == upstream]
    offered += [s for s in history_specs if s not in offered]
    return offered, choice_instruction("tool", upstream)


def tool_uses(calls: Any, param: str, names: ToolNames) -> list[dict[str, Any]]:
    """Kiro toolUses for an assistant message's `tool_calls`; 400 on a malformed call."""
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _fail(f"{param} must be a list", param)
    uses = []
    for i, call in enumerate(calls):
        where = f"{param}[{i}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if (not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]
                or not isinstance(call.get("id"), str) or not call["id"]):
            raise _fail(f"{where} must have an 'id' and a 'function' with a 'name'", where)
        if call.get("type", "function") != "function":
            raise _fail(f"{where}.type must be 'function'", f"{where}.type")
        args = _arguments(fn.get("arguments"), f"{where}.function.arguments")
        uses.append({"toolUseId": call["id"], "name": names.upstream(fn["name"]), "input": args})
    return uses


def _arguments(raw: Any, param: str) -> dict[str, Any]:
    """A call's `arguments` (JSON text, or an object) as the tool input Kiro takes: no nulls, bounded depth."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        args = loads_finite(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise _fail(f"{param} is not valid JSON: {exc.msg} at column {exc.colno}", param) from None
    except ValueError as exc:  # NaN, Infinity, 1e999, or an integer of more digits than Python converts
        raise _fail(f"{param} is not valid JSON: {exc}", param) from None
    except RecursionError:
        raise _fail(f"{param} is nested more than {MAX_DEPTH} levels deep", param) from None
    if not isinstance(args, dict):
        raise _fail(f"{param} must encode a JSON object", param)
    try:
        return without_nulls(args)  # Kiro takes an omitted key, never a null
    except TooDeep:
        raise _fail(f"{param} is nested more than {MAX_DEPTH} levels deep", param) from None


def tool_result(message: dict[str, Any], text: str, where: str) -> dict[str, Any]:
    """Kiro's toolResult for a `tool` message whose content reads as `text`."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail(f"{where}.tool_call_id is required for tool messages", f"{where}.tool_call_id")
    is_error = message.get("is_error", False)
    if not isinstance(is_error, bool):
        raise _fail(f"{where}.is_error must be a boolean", f"{where}.is_error")
    return {"toolUseId": call_id, "content": [{"text": text or EMPTY_RESULT}],
            "status": "error" if is_error else "success"}
