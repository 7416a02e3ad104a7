import copy
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ki2api.translate.tools import (MAX_DEPTH, MAX_DESCRIPTION, ToolNames, TooDeep, choice_instruction, kiro_tool,
                                    normalise_schema, without_nulls)

NAME_RULE = re.compile(r"[A-Za-z0-9_-]{1,63}")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["type", "properties", "required", "additionalProperties", "items",
                                         "anyOf", "x", "$schema"]), inner, max_size=5),
                    max_leaves=20)


def has_null(value):
    if value is None:
        return True
    if isinstance(value, dict):
        return any(has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(has_null(v) for v in value)
    return False


def test_a_clean_schema_keeps_its_meaning():
    schema = {"type": "object", "properties": {"path": {"type": "string", "description": "file"}},
              "required": ["path"], "additionalProperties": False}
    assert normalise_schema(schema) == schema


def test_nulls_go_everywhere_and_the_input_is_not_touched():
    schema = {"type": "object", "description": None,
              "properties": {"a": {"type": "string", "default": None, "enum": ["x", None]},
                             "b": {"type": "array", "items": {"type": "object", "required": None}}},
              "required": ["a", None, 3, "a"]}
    before = copy.deepcopy(schema)
    out = normalise_schema(schema)
    assert schema == before
    assert not has_null(out)
    assert out["required"] == ["a"]
    assert out["properties"]["a"] == {"type": "string", "enum": ["x"]}
    assert out["properties"]["b"]["items"] == {"type": "object"}


def nested(levels: int) -> dict:
    """A schema of `levels` JSON objects, one inside the next, built without recursion."""
    schema: dict = {"type": "string"}
    for _ in range(levels - 1):
        schema = {"items": schema}
    return schema


def test_without_nulls_cleans_tool_inputs_at_every_level_and_leaves_the_input_alone():
    value = {"path": ".", "depth": None, "opts": {"all": None, "sort": ["name", None, {"x": None}]}}
    before = copy.deepcopy(value)
    assert without_nulls(value) == {"path": ".", "opts": {"sort": ["name", {}]}}
    assert value == before


def test_schemas_and_inputs_nested_deeper_than_the_limit_are_refused_not_a_crash():
    assert normalise_schema(nested(MAX_DEPTH))["items"]  # exactly at the limit: fine
    for levels in (MAX_DEPTH + 1, 5000):  # 5000 would overflow Python's stack in a plain recursive walk
        with pytest.raises(TooDeep):
            normalise_schema(nested(levels))
        with pytest.raises(TooDeep):
            without_nulls({"a": nested(levels)})
    with pytest.raises(TooDeep):
        kiro_tool("t", None, nested(MAX_DEPTH + 1), ToolNames())


def test_top_level_shape_is_forced():
    out = normalise_schema({"$schema": "http://json-schema.org/draft-07/schema#", "type": "string",
                            "properties": ["oops"], "required": "a", "additionalProperties": "yes"})
    assert out == {"type": "object", "properties": {}, "required": []}
    assert normalise_schema(None) == {"type": "object", "properties": {}, "required": []}
    assert normalise_schema("text") == {"type": "object", "properties": {}, "required": []}


def test_nested_shapes_are_fixed():
    out = normalise_schema({"properties": {"o": {"type": "object", "properties": 5, "required": {"a": 1},
                                                 "additionalProperties": {"type": "string", "required": "x"}},
                                           "u": {"anyOf": [{"type": "object", "required": [1, "k"]}]}}})
    assert out["properties"]["o"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert out["properties"]["u"]["anyOf"][0]["required"] == ["k"]


@given(JSON)
def test_any_json_becomes_an_acceptable_schema(value):
    out = normalise_schema(value)
    assert not has_null(out)
    assert out["type"] == "object" and isinstance(out["properties"], dict)
    assert isinstance(out["required"], list) and all(isinstance(r, str) for r in out["required"])
    assert "additionalProperties" not in out or isinstance(out["additionalProperties"], (bool, dict))
    json.dumps(out)


def test_good_names_pass_unchanged_and_map_back():
    names = ToolNames()
    assert names.upstream("Read") == "Read"
    assert names.upstream("mcp__github-create_issue") == "mcp__github-create_issue"
    assert names.client("Read") == "Read"
    assert names.client("read") == "Read"  # Kiro matches tool names case-insensitively
    assert names.client("never_seen") == "never_seen"


def test_long_and_odd_names_fit_kiro_and_round_trip():
    names = ToolNames()
    long_name = "mcp__" + "very_long_server_name_" * 5 + "tool"
    odd = ["web.search", "读取文件", "a b", long_name, "x" * 64]
    mapped = [names.upstream(n) for n in odd]
    for client, upstream in zip(odd, mapped):
        assert NAME_RULE.fullmatch(upstream), upstream
        assert names.client(upstream) == client
        assert names.upstream(client) == upstream  # stable
    assert len(set(mapped)) == len(odd)
    assert ToolNames().upstream(long_name) == names.upstream(long_name)  # same in every request


def test_names_differing_only_in_odd_characters_stay_apart():
    names = ToolNames()
    assert names.upstream("a.b") != names.upstream("a:b")
    assert names.upstream("a_b") == "a_b"


def test_names_differing_only_in_case_stay_apart_upstream():
    names = ToolNames()
    first, second = names.upstream("Read"), names.upstream("read")
    assert first == "Read" and second.lower() != first.lower() and NAME_RULE.fullmatch(second)
    assert (names.client(first), names.client(second)) == ("Read", "read")
    assert names.upstream("read") == second  # the same every time


def test_a_lone_surrogate_in_a_name_maps_back_as_a_replacement_character():
    names = ToolNames()
    upstream = names.upstream("get\ud800it")
    assert NAME_RULE.fullmatch(upstream)
    assert names.client(upstream) == "get\ufffdit"
    assert names.client(names.upstream("plain")) == "plain"


def test_kiro_tool_shape_description_and_limits():
    names = ToolNames()
    spec = kiro_tool("get.weather", None, {"type": "object", "properties": {"city": {"type": "string"}}}, names)
    body = spec["toolSpecification"]
    assert body["name"] == names.upstream("get.weather") and NAME_RULE.fullmatch(body["name"])
    assert body["description"] == "Tool get.weather."
    assert body["inputSchema"]["json"]["properties"] == {"city": {"type": "string"}}
    long = kiro_tool("t", "d" * 20_000, {}, names)["toolSpecification"]["description"]
    assert len(long) == MAX_DESCRIPTION
    assert kiro_tool("t", "   ", {}, names)["toolSpecification"]["description"] == "Tool t."


def test_choice_instructions():
    assert choice_instruction("auto") == ""
    assert "do not call any tool" in choice_instruction("none")
    assert "at least one" in choice_instruction("any")
    assert "`Bash`" in choice_instruction("tool", "Bash")
