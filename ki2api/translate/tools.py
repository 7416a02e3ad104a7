"""Client tool definitions -> Kiro tool specifications, within the upstream's limits.

Kiro answers "Improperly formed request" to schemas holding nulls or odd shapes, and
to tool names it cannot take; `normalise_schema` and `ToolNames` keep every request
inside those rules, and `ToolNames` maps the upstream's names back to the client's.
`without_nulls` also cleans the tool inputs replayed in history. Both refuse JSON nested
deeper than MAX_DEPTH (`TooDeep`), so nothing after them recurses without bound.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

MAX_NAME = 63
MAX_DESCRIPTION = 10_000
_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,63}")
_NAME_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LEN = 8
# Far beyond any real schema or tool input; keeps the recursive walks here and after (payload size
# estimate, JSON encoding) well inside Python's recursion limit.
MAX_DEPTH = 100
# Keys holding one sub-schema, a map of sub-schemas, or a list of sub-schemas.
_SUB_SCHEMA = ("items", "additionalItems", "not", "contains", "propertyNames", "if", "then", "else")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as inf, which would go upstream as the non-JSON Infinity
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def loads_finite(text: str) -> Any:
    """json.loads refusing what JSON cannot carry back out (ValueError): NaN, Infinity, numbers beyond a float.

    Like json.loads it also raises ValueError for an integer of more digits than Python converts, and
    RecursionError for nesting deeper than the interpreter's stack.
    """
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


class TooDeep(ValueError):
    """A JSON value nested deeper than MAX_DEPTH objects and lists."""


def without_nulls(value: Any, depth: int = MAX_DEPTH) -> Any:
    """A deep copy of `value` without None in any object or list; TooDeep past `depth` levels of nesting."""
    if isinstance(value, (dict, list)):
        if depth <= 0:
            raise TooDeep(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            return {str(k): without_nulls(v, depth - 1) for k, v in value.items() if v is not None}
        return [without_nulls(v, depth - 1) for v in value if v is not None]
    return value


def _fix_shapes(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop shape-breaking keywords of one (sub-)schema and recurse into its sub-schemas (in place)."""
    if "properties" in schema and not isinstance(schema["properties"], dict):
        del schema["properties"]
    if "required" in schema:
        required = schema["required"]
        if isinstance(required, list):
            schema["required"] = list(dict.fromkeys(r for r in required if isinstance(r, str)))
        else:
            del schema["required"]
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], (bool, dict)):
        del schema["additionalProperties"]
    for key in _SUB_SCHEMA + ("additionalProperties",):
        if isinstance(schema.get(key), dict):
            _fix_shapes(schema[key])
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for sub in schema[key].values():
                if isinstance(sub, dict):
                    _fix_shapes(sub)
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for sub in schema[key]:
                if isinstance(sub, dict):
                    _fix_shapes(sub)
    return schema


def normalise_schema(schema: Any) -> dict[str, Any]:
    """Return a new input schema Kiro accepts: top-level object with properties and required, no nulls.

    Raises TooDeep for a schema nested deeper than MAX_DEPTH.
    """
    clean = without_nulls(schema) if isinstance(schema, dict) else {}
    clean.pop("$schema", None)
    _fix_shapes(clean)
    clean["type"] = "object"
    clean.setdefault("properties", {})
    clean.setdefault("required", [])
    return clean


def _sendable(text: str) -> str:
    """`text` as the client can be sent it: each lone UTF-16 surrogate (which UTF-8 cannot carry) as U+FFFD."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


class ToolNames:
    """A two-way map between client tool names and names Kiro accepts (<= 63 chars of [A-Za-z0-9_-], unique
    regardless of case)."""

    def __init__(self) -> None:
        self._up: dict[str, str] = {}
        self._down: dict[str, str] = {}
        self._down_lower: dict[str, str] = {}

    def upstream(self, client_name: str) -> str:
        """The name to send upstream for `client_name`; the same every time for one name."""
        known = self._up.get(client_name)
        if known is not None:
            return known
        # Kiro compares tool names without case: "read" after "Read" would be declared twice ("Improperly formed").
        if _NAME_OK.fullmatch(client_name) and client_name.lower() not in self._down_lower:
            name = client_name
        else:
            digest = hashlib.sha256(client_name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
            stem = _NAME_BAD_CHAR.sub("_", client_name)[: MAX_NAME - _HASH_LEN - 1]
            name = f"{stem}_{digest}"
        self._up[client_name] = name
        back = _sendable(client_name)
        self._down.setdefault(name, back)
        self._down_lower.setdefault(name.lower(), back)
        return name

    def client(self, upstream_name: str) -> str:
        """The client's name for an upstream tool name (a lone surrogate in it as U+FFFD); unknown names come
        back unchanged."""
        return self._down.get(upstream_name) or self._down_lower.get(upstream_name.lower(), upstream_name)

    def __contains__(self, client_name: object) -> bool:
        return client_name in self._up


def _description(name: str, description: str | None) -> str:
    text = description.strip() if isinstance(description, str) else ""
    return (text or f"Tool {name}.")[:MAX_DESCRIPTION]


def kiro_tool(name: str, description: str | None, schema: Any, names: ToolNames) -> dict[str, Any]:
    """One Kiro toolSpecification for a client tool: upstream name, non-empty description, clean schema.

    Raises TooDeep for a schema nested deeper than MAX_DEPTH.
    """
    return {"toolSpecification": {
        "name": names.upstream(name),
        "description": _description(name, description),
        "inputSchema": {"json": normalise_schema(schema)},
    }}


def choice_instruction(kind: str, upstream_name: str | None = None) -> str:
    """The note added to the current message for a tool choice Kiro has no field for ("" for auto).

    kind: "auto", "none" (answer without tools), "any" (OpenAI "required": some tool must be
    called) or "tool" (the tool `upstream_name` must be called).
    """
    if kind == "none":
        return "[Answer this message in text only: do not call any tool.]"
    if kind == "any":
        return "[Answer this message by calling at least one of the available tools.]"
    if kind == "tool":
        return f"[Answer this message by calling the tool `{upstream_name}`.]"
    return ""
