"""Anthropic Messages request -> options, neutral Conversation and Kiro's body; malformed parts -> 400 naming them."""
import copy
import json

import pytest

from ki2api.errors import InvalidRequest
from ki2api.translate.anthropic_request import parse_conversation, parse_options
from ki2api.translate.history import SYSTEM_ACK, build_payload
from ki2api.translate.tools import MAX_DEPTH

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
BASE = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}]}


def payload(body, thinking_budget=None):
    return build_payload(parse_conversation(body, thinking_budget), "claude-sonnet-4.5")["conversationState"]


def current(state):
    return state["currentMessage"]["userInputMessage"]


def tool_round_trip(result_block):
    return {**BASE, "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [result_block]}]}


def test_options_defaults_and_fields():
    options = parse_options({**BASE, "stop_sequences": ["END", ""], "stream": True, "temperature": 0.2,
                             "top_k": 5, "metadata": {"user_id": "u1"}})
    assert (options.model, options.max_tokens, options.stream) == ("claude-sonnet-4-5", 1024, True)
    assert options.stop_sequences == ["END"]
    assert options.thinking_budget is None


def test_max_tokens_is_required_except_for_counting():
    with pytest.raises(InvalidRequest) as info:
        parse_options({k: v for k, v in BASE.items() if k != "max_tokens"})
    assert info.value.param == "max_tokens"
    assert parse_options({k: v for k, v in BASE.items() if k != "max_tokens"}, count_only=True).max_tokens is None


@pytest.mark.parametrize("thinking,budget", [
    ({"type": "enabled", "budget_tokens": 2048}, 2048),
    ({"type": "disabled"}, None),
    ({"type": "adaptive"}, 8191),  # as much as max_tokens leaves (the prefix clamps to 24576)
])
def test_thinking_parameter(thinking, budget):
    assert parse_options({**BASE, "max_tokens": 8192, "thinking": thinking}).thinking_budget == budget


def test_thinking_turns_on_the_legacy_prefix():
    state = payload(BASE, thinking_budget=4000)
    first = state["history"][0]["userInputMessage"]["content"]
    assert first.startswith("<thinking_mode>enabled</thinking_mode><max_thinking_length>4000</max_thinking_length>")


def test_system_as_string_or_blocks_with_cache_control():
    as_string = payload({**BASE, "system": "Be terse."})
    as_blocks = payload({**BASE, "system": [{"type": "text", "text": "Be", "cache_control": {"type": "ephemeral"}},
                                            {"type": "text", "text": "terse."}]})
    assert as_string["history"][0]["userInputMessage"]["content"] == "Be terse."
    assert as_blocks["history"][0]["userInputMessage"]["content"] == "Be\nterse."
    assert as_blocks["history"][1]["assistantResponseMessage"]["content"] == SYSTEM_ACK
    assert current(as_blocks)["content"] == "Hi"


def test_text_blocks_and_image_become_content_and_images():
    state = payload({**BASE, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is", "cache_control": {"type": "ephemeral"}}, IMAGE,
        {"type": "text", "text": "in this image?"}]}]})
    assert current(state)["content"] == "What is\nin this image?"
    assert current(state)["images"] == [{"format": "png", "source": {"bytes": PNG}}]


def test_tool_round_trip_becomes_tool_uses_and_results():
    state = payload(tool_round_trip({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"}))
    assistant = state["history"][-1]["assistantResponseMessage"]
    assert assistant["content"] == "Let me look."
    assert assistant["toolUses"] == [{"toolUseId": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
    context = current(state)["userInputMessageContext"]
    assert context["toolResults"] == [{"toolUseId": "toolu_1", "content": [{"text": "18 C, sunny"}],
                                       "status": "success"}]
    spec = context["tools"][0]["toolSpecification"]
    assert spec["name"] == "get_weather" and spec["inputSchema"]["json"]["required"] == ["city"]


def test_nulls_in_a_history_tool_input_are_left_out():
    body = tool_round_trip({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"})
    body["messages"][1]["content"][1]["input"] = {"city": "Paris", "unit": None, "when": {"day": None, "h": [1, None]}}
    uses = payload(body)["history"][-1]["assistantResponseMessage"]["toolUses"]
    assert uses[0]["input"] == {"city": "Paris", "when": {"h": [1]}}


def test_tool_result_blocks_error_flag_and_images():
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
             "content": [{"type": "text", "text": "city unknown"}, IMAGE]}
    message = current(payload(tool_round_trip(block)))
    result = message["userInputMessageContext"]["toolResults"][0]
    assert result["status"] == "error"
    assert result["content"] == [{"text": "city unknown\n[image attached below]"}]
    assert message["images"] == [{"format": "png", "source": {"bytes": PNG}}]


def test_empty_tool_result_is_not_sent_empty():
    result = current(payload(tool_round_trip({"type": "tool_result", "tool_use_id": "toolu_1"})))
    assert result["userInputMessageContext"]["toolResults"][0]["content"][0]["text"].strip()


THOUGHT = {**BASE, "messages": [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": [{"type": "thinking", "thinking": "Add them.", "signature": "abc"},
                                      {"type": "redacted_thinking", "data": "opaque"},
                                      {"type": "text", "text": "4"}]},
    {"role": "user", "content": "Times 3?"}]}


def test_thinking_blocks_in_history_are_sent_back_as_reasoning_when_thinking_is_on():
    assistant = payload(THOUGHT, thinking_budget=2048)["history"][-1]["assistantResponseMessage"]
    assert assistant["content"] == "<thinking>Add them.</thinking>\n\n4"


def test_thinking_blocks_in_history_are_dropped_when_thinking_is_off():
    # Without thinking the answer's text is not split: replayed tags would lead the model to think in the text.
    state = payload(THOUGHT)
    assert state["history"][-1]["assistantResponseMessage"]["content"] == "4"
    assert "Add them." not in json.dumps(state)


def test_server_tools_are_dropped_and_long_names_mapped():
    long_name = "mcp__very_long_server_name__" + "x" * 60
    body = {**BASE, "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                              {**WEATHER, "name": long_name, "cache_control": {"type": "ephemeral"}}]}
    conversation = parse_conversation(body)
    names = [t["toolSpecification"]["name"] for t in conversation.tools]
    assert len(names) == 1 and len(names[0]) <= 63
    assert conversation.names.client(names[0]) == long_name


@pytest.mark.parametrize("choice,offered,note", [
    (None, ["get_weather", "get_time"], ""),
    ({"type": "auto"}, ["get_weather", "get_time"], ""),
    ({"type": "any"}, ["get_weather", "get_time"], "calling at least one"),
    ({"type": "tool", "name": "get_time"}, ["get_time"], "`get_time`"),
    ({"type": "none"}, [], "do not call any tool"),
])
def test_tool_choice_is_mapped_like_the_openai_side(choice, offered, note):
    time_tool = {**WEATHER, "name": "get_time"}
    body = {**BASE, "tools": [WEATHER, time_tool], **({"tool_choice": choice} if choice else {})}
    message = current(payload(body))
    tools = message.get("userInputMessageContext", {}).get("tools", [])
    assert [t["toolSpecification"]["name"] for t in tools] == offered
    assert note in message["content"] and message["content"].startswith("Hi")


def test_assistant_prefill_stays_in_history():
    body = {**BASE, "messages": [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}]}
    state = payload(body)
    assert state["history"][-1]["assistantResponseMessage"]["content"] == "1, 2,"


def deep(levels):
    """`levels` JSON objects, one inside the next."""
    value = {}
    for _ in range(levels - 1):
        value = {"properties": value}
    return value


MALFORMED = [
    ({"model": 5}, "model"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"stop_sequences": [1]}, "stop_sequences"),
    ({"metadata": "x"}, "metadata"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "thinking.budget_tokens"),  # >= max_tokens
    ({"thinking": {"type": "sometimes"}}, "thinking.type"),
    ({"thinking": "on"}, "thinking"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}]}]}, "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}]}]}, "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages[0].content[0].source.type"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}]}]},
     "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]},
     "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}]}]},
     "messages[0].content[0].source"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "b", "input": {}}]}]},
     "messages[0].content[0].id"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": "{}"}]}]},
     "messages[0].content[0].input"),
    ({"messages": [{"role": "assistant", "content": [{"type": "thinking"}]}]}, "messages[0].content[0].thinking"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages[0].content[0].tool_use_id"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": 5}]}]},
     "messages[0].content[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a",
                                                 "content": [{"type": "document"}]}]}]},
     "messages[0].content[0].content[0]"),
    ({"system": 5}, "system"),
    ({"system": [{"type": "image"}]}, "system[0]"),
    ({"system": [{"type": "text"}]}, "system[0].text"),
    ({"tools": {"name": "x"}}, "tools"),
    ({"tools": [{"description": "no name", "input_schema": {}}]}, "tools[0].name"),
    ({"tools": [{"name": "x"}]}, "tools[0].input_schema"),
    ({"tools": [{"name": "x", "input_schema": {}, "description": 5}]}, "tools[0].description"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].name"),
    ({"tools": [{"name": "deep", "input_schema": deep(MAX_DEPTH + 1)}]}, "tools[0].input_schema"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b",
                                                      "input": {"x": deep(MAX_DEPTH)}}]}]},
     "messages[0].content[0].input"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"tool_choice": {"type": "any"}}, "tool_choice.type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "other"}}, "tool_choice.name"),
]


@pytest.mark.parametrize("change,param", MALFORMED, ids=[p for _, p in MALFORMED])
def test_malformed_requests_are_400_naming_the_place(change, param):
    body = {**copy.deepcopy(BASE), **change}
    with pytest.raises(InvalidRequest) as info:
        options = parse_options(body)
        parse_conversation(body, options.thinking_budget)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.message.startswith(param)


def test_thinking_signatures_and_redacted_data_are_kept_for_native_replay():
    assistant = parse_conversation(THOUGHT).turns[1]
    assert assistant.signed_reasoning == ("Add them.", "abc") and assistant.redacted_reasoning == "opaque"
    unsigned = copy.deepcopy(THOUGHT)
    unsigned["messages"][1]["content"][0]["signature"] = ""
    assert parse_conversation(unsigned).turns[1].signed_reasoning is None
