"""Validates ki2api's OpenAI-side responses against OpenAI's published OpenAPI schema."""
from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from tests.helpers.fixtures import OPENAI_SCHEMAS


def _nullable_to_type(node: Any) -> Any:
    """Rewrite OpenAPI's `nullable: true` as a JSON Schema null type (tests/fixtures/README.md)."""
    if isinstance(node, list):
        return [_nullable_to_type(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable_to_type(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = types + ["null"]
        elif "$ref" in node or "allOf" in node or "oneOf" in node or "anyOf" in node:
            node = {"anyOf": [node, {"type": "null"}]}
        if "enum" in node and None not in node["enum"]:
            node["enum"] = node["enum"] + [None]
    return node


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    spec = json.loads(OPENAI_SCHEMAS.read_text(encoding="utf-8"))
    return {"components": {"schemas": _nullable_to_type(spec["components"]["schemas"])}}


def validate(instance: Any, schema_name: str) -> None:
    """Raise jsonschema.ValidationError unless `instance` fits components.schemas[schema_name]."""
    root = _document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", **root}
    Draft202012Validator(schema).validate(instance)
