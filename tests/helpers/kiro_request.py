"""Checks that an upstream request body keeps every rule Kiro enforces ("Improperly formed request")."""
from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
CACHE_POINT = {"type": "default"}  # the published CachePoint: `type`, whose one value is "default"


def _no_nulls(value: Any, path: str = "body") -> None:
    assert value is not None, f"null at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nulls(item, f"{path}[{i}]")


def _check_cache_points(value: Any, messages: list[dict[str, Any]], path: str = "body") -> None:
    """A cachePoint only on a userInputMessage or assistantResponseMessage, and exactly {"type": "default"}."""
    if isinstance(value, dict):
        if "cachePoint" in value:
            assert any(value is m for m in messages), f"a cachePoint at {path}, not on a message"
            assert value["cachePoint"] == CACHE_POINT, f"cachePoint at {path} is {value['cachePoint']!r}"
        for key, item in value.items():
            _check_cache_points(item, messages, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_cache_points(item, messages, f"{path}[{i}]")


def _check_tools(tools: list[dict[str, Any]]) -> set[str]:
    names = set()
    for tool in tools:
        # a Bedrock-style {"cachePoint": ...} among the tools is refused (hj01857655/kiro-account-manager#109)
        assert set(tool) == {"toolSpecification"}, f"a tools entry with keys {sorted(tool)}"
        spec = tool["toolSpecification"]
        assert set(spec) == {"name", "description", "inputSchema"}, f"tool spec keys {sorted(spec)}"
        assert NAME.fullmatch(spec["name"]), f"tool name {spec['name']!r} is not [A-Za-z0-9_-]{{1,63}}"
        assert 0 < len(spec["description"]) <= 10_000, \
            f"tool {spec['name']}: description of {len(spec['description'])} characters"
        schema = spec["inputSchema"]["json"]
        assert schema["type"] == "object" and isinstance(schema["properties"], dict), \
            f"tool {spec['name']}: schema is not an object with properties"
        assert isinstance(schema.get("required", []), list), f"tool {spec['name']}: required is not a list"
        assert spec["name"].lower() not in names, f"tool {spec['name']} declared twice"
        names.add(spec["name"].lower())
    return names


def assert_well_formed(body: dict[str, Any]) -> None:
    """Fail with a message naming the broken rule, if any, in a generateAssistantResponse body."""
    _no_nulls(body)
    state = body["conversationState"]
    current = state["currentMessage"]["userInputMessage"]
    history = state["history"]
    roles = ["user" if "userInputMessage" in h else "assistant" for h in history]
    assert all("userInputMessage" in h or "assistantResponseMessage" in h for h in history), \
        "a history entry is neither userInputMessage nor assistantResponseMessage"
    assert roles == ["user", "assistant"] * (len(roles) // 2), f"history does not alternate: {roles}"
    declared = _check_tools(current.get("userInputMessageContext", {}).get("tools", []))
    messages = [h.get("userInputMessage") or h.get("assistantResponseMessage") for h in history] + [current]
    _check_cache_points(body, messages)
    previous_uses: set[str] = set()
    for i, message in enumerate(messages):
        context = message.get("userInputMessageContext", {})
        if i % 2 == 0:  # user
            results = context.get("toolResults", [])
            ids = [r["toolUseId"] for r in results]
            assert len(ids) == len(set(ids)), f"duplicate toolResults in message {i}"
            assert set(ids) <= previous_uses, f"message {i}: results {set(ids) - previous_uses} have no toolUse"
            assert set(ids) == previous_uses, f"message {i}: toolUses {previous_uses - set(ids)} got no result"
            for result in results:
                assert result["status"] in ("success", "error") and result["content"], \
                    f"message {i}: toolResult {result['toolUseId']} has no content or a bad status"
                assert all(set(c) <= {"text", "json"} and c for c in result["content"]), \
                    f"message {i}: toolResult {result['toolUseId']} content is not text/json"
            assert message["content"] or results or message.get("images"), f"empty user message {i}"
            if i < len(messages) - 1:
                assert "tools" not in context, "tools belong to the current message only"
            for image in message.get("images", []):
                assert image["format"] in ("png", "jpeg", "gif", "webp") and image["source"]["bytes"], \
                    f"message {i}: image format {image['format']!r} or no bytes"
        else:  # assistant
            assert message["content"], f"empty assistant message {i}"
            uses = message.get("toolUses", [])
            for use in uses:
                assert isinstance(use["input"], dict), f"message {i}: toolUse {use['toolUseId']} input is not an object"
                assert use["name"].lower() in declared, f"tool {use['name']} used in history but not declared"
            previous_uses = {u["toolUseId"] for u in uses}
            assert len(previous_uses) == len(uses), f"duplicate toolUseIds in message {i}"
