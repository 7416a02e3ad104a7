"""A small JSON Schema check for the subset Kiro's model list uses in `additionalModelRequestFieldsSchema`.

Kiro's schemas use only `type` (object, string, integer, number, boolean), `properties`, `required`, `enum`,
`minimum`/`maximum` and `additionalProperties: false`; a keyword outside that subset is ignored, so a schema
Kiro widens later accepts more here, never less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "string": (str,), "integer": (int,),
                                       "number": (int, float), "boolean": (bool,), "array": (list,)}


@dataclass(frozen=True)
class Mismatch:
    """Where a value breaks the schema (`path` dotted, "" for the top) and what the schema wanted there."""

    path: str
    problem: str
    allowed: tuple[Any, ...] = ()


def _type_ok(value: Any, kind: Any) -> bool:
    if not isinstance(kind, str) or kind not in _TYPES:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[kind])


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def first_mismatch(value: Any, schema: Mapping[str, Any], path: str = "") -> Mismatch | None:
    """The first place `value` breaks `schema`, or None when it conforms."""
    if not _type_ok(value, schema.get("type")):
        return Mismatch(path, f"must be of type {schema['type']}")
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return Mismatch(path, "is not one of the allowed values", tuple(enum))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and value < low or isinstance(high, (int, float)) and value > high:
            return Mismatch(path, f"must be between {low} and {high}")
    if isinstance(value, dict):
        return _object_mismatch(value, schema, path)
    return None


def _object_mismatch(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> Mismatch | None:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for key in schema.get("required") or ():
        if key not in value:
            return Mismatch(_join(path, key), "is required")
    for key, item in value.items():
        if key in properties:
            found = first_mismatch(item, properties[key], _join(path, key))
            if found is not None:
                return found
        elif schema.get("additionalProperties") is False:
            return Mismatch(_join(path, key), "is not taken", tuple(properties))
    return None


def property_schema(schema: Mapping[str, Any] | None, path: str) -> Mapping[str, Any] | None:
    """The sub-schema at a dotted property path (`output_config.effort`), None where the schema has none."""
    for key in path.split("."):
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        if not isinstance(properties, dict) or not isinstance(properties.get(key), dict):
            return None
        schema = properties[key]
    return schema
