import base64
import json

import pytest

from ki2api.errors import InvalidRequest
from ki2api.translate.openai_request import parse_conversation, parse_options, thinking_budget, to_codewhisperer
from ki2api.translate.thinking import thinking_prefix
from tests.helpers.openai_requests import BAD_MESSAGES, BAD_TOOL_REQUESTS, PNG, PNG_URL, tool


def body(**extra):
    return {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_system_and_developer_messages_become_the_system_prompt():
    conv = parse_conversation({"messages": [
        {"role": "system", "content": "rule one"}, {"role": "developer", "content": "rule two"},
        {"role": "user", "content": "hi"}]})
    assert conv.system == "rule one\n\nrule two"
    assert [t.role for t in conv.turns] == ["user"]


def test_text_parts_are_joined():
    conv = parse_conversation({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}]})
    assert conv.turns[0].text == "first\nsecond"


def test_full_payload_has_the_ide_shape():
    payload = to_codewhisperer({"messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]}, "claude-sonnet-4.5")
    state = payload["conversationState"]
    assert state["currentMessage"]["userInputMessage"]["content"] == "q2"
    assert state["currentMessage"]["userInputMessage"]["modelId"] == "claude-sonnet-4.5"
    contents = [h.get("userInputMessage", h.get("assistantResponseMessage"))["content"] for h in state["history"]]
    assert contents == ["sys", "I will follow these instructions.", "q1", "a1"]


def test_tool_calls_and_tool_results_round_trip():
    payload = to_codewhisperer({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12C"}]}, "m")
    state = payload["conversationState"]
    assert state["history"][1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}]
    results = state["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert results == [{"toolUseId": "call_1", "content": [{"text": "12C"}], "status": "success"}]


@pytest.mark.parametrize("messages,param", [
    (None, "messages"), ([], "messages"), (["hi"], "messages[0]"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text"),
    ([{"role": "user", "content": [{"type": "video"}]}], "messages[0].content[0]"),
    ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id"),
    ([{"role": "system", "content": "only system"}], "messages"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]}],
     "messages[0].tool_calls[0].function.arguments"),
])
def test_malformed_messages_are_refused_naming_the_field(messages, param):
    with pytest.raises(InvalidRequest) as info:
        parse_conversation({"messages": messages})
    assert info.value.param == param
    assert info.value.status == 400


def test_options_read_stream_usage_stop_and_max_tokens():
    o = parse_options(body(stream=True, stream_options={"include_usage": True}, stop="###", max_tokens=50,
                           temperature=0.2, top_p=0.9))
    assert (o.stream, o.include_usage, o.stop, o.max_tokens) == (True, True, ["###"], 50)
    assert parse_options(body(max_completion_tokens=7)).max_tokens == 7


@pytest.mark.parametrize("extra,param", [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"stream": "yes"}, "stream"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"max_tokens": 0}, "max_tokens"), ({"model": ""}, "model"),
])
def test_unsupported_options_are_refused(extra, param):
    with pytest.raises(InvalidRequest) as info:
        parse_options(body(**extra))
    assert info.value.param == param


# --- tools, tool_choice, images, thinking ---


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string", "description": None}},
                                                "required": ["city"]}}}
LONG = "mcp__" + "x" * 70


def state(**extra):
    payload = to_codewhisperer({"messages": [{"role": "user", "content": "weather in Oslo?"}], **extra}, "m")
    return payload["conversationState"]


def current(**extra):
    return state(**extra)["currentMessage"]["userInputMessage"]


def test_tools_become_clean_kiro_specs():
    specs = current(tools=[WEATHER])["userInputMessageContext"]["tools"]
    assert specs == [{"toolSpecification": {"name": "get_weather", "description": "Weather for a city",
                                            "inputSchema": {"json": {
                                                "type": "object", "properties": {"city": {"type": "string"}},
                                                "required": ["city"]}}}}]


def test_long_tool_names_are_shortened_everywhere_consistently():
    conv = parse_conversation({"tools": [tool(LONG)], "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": LONG, "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]})
    upstream = conv.names.upstream(LONG)
    assert len(upstream) <= 63 and upstream != LONG
    assert conv.tools[0]["toolSpecification"]["name"] == upstream
    assert conv.turns[1].tool_uses[0]["name"] == upstream
    assert conv.names.client(upstream) == LONG


def test_tool_choice_auto_and_default_offer_every_tool_without_a_note():
    for extra in ({}, {"tool_choice": "auto"}):
        msg = current(tools=[WEATHER, tool("other")], **extra)
        assert len(msg["userInputMessageContext"]["tools"]) == 2
        assert msg["content"] == "weather in Oslo?"


def test_tool_choice_none_offers_no_tools_and_says_so():
    msg = current(tools=[WEATHER], tool_choice="none")
    assert "userInputMessageContext" not in msg
    assert msg["content"].startswith("weather in Oslo?\n\n") and "do not call any tool" in msg["content"]


def test_tool_choice_none_keeps_tools_used_in_history_declared():
    payload = to_codewhisperer({"tools": [WEATHER, tool("other")], "tool_choice": "none", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "12C"}]}, "m")
    ctx = payload["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert [t["toolSpecification"]["name"] for t in ctx["tools"]] == ["get_weather"]
    assert ctx["tools"][0]["toolSpecification"]["description"] == "Weather for a city"


def test_tool_choice_required_offers_all_and_asks_for_a_call():
    msg = current(tools=[WEATHER, tool("other")], tool_choice="required")
    assert len(msg["userInputMessageContext"]["tools"]) == 2
    assert "calling at least one of the available tools" in msg["content"]


def test_tool_choice_named_offers_that_tool_and_asks_for_it():
    msg = current(tools=[WEATHER, tool("other")],
                  tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert [t["toolSpecification"]["name"] for t in msg["userInputMessageContext"]["tools"]] == ["get_weather"]
    assert "calling the tool `get_weather`" in msg["content"]
    long = current(tools=[tool(LONG)], tool_choice={"type": "function", "function": {"name": LONG}})
    upstream = long["userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    assert f"`{upstream}`" in long["content"]


def test_nulls_in_history_tool_arguments_are_left_out():
    call = {"id": "c1", "function": {"name": "ls", "arguments": '{"path": ".", "all": null, "o": {"x": null}}'}}
    state = to_codewhisperer(body(messages=[
        {"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"}]), "m")["conversationState"]
    assert state["history"][1]["assistantResponseMessage"]["toolUses"][0]["input"] == {"path": ".", "o": {}}


def test_tool_results_with_error_flag_parts_and_empty_content():
    conv = parse_conversation({"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "part 1"},
                                                          {"type": "text", "text": "part 2"}]},
        {"role": "tool", "tool_call_id": "b", "content": "boom", "is_error": True},
        {"role": "tool", "tool_call_id": "c", "content": ""}]})
    assert [u["input"] for u in conv.turns[1].tool_uses] == [{}, {"x": 1}, {}]
    results = [r for t in conv.turns for r in t.tool_results]
    assert results == [
        {"toolUseId": "a", "content": [{"text": "part 1\npart 2"}], "status": "success"},
        {"toolUseId": "b", "content": [{"text": "boom"}], "status": "error"},
        {"toolUseId": "c", "content": [{"text": "(no output)"}], "status": "success"}]


def test_an_image_returned_by_a_tool_goes_with_its_result():
    payload = to_codewhisperer({"messages": [
        {"role": "user", "content": "screenshot please"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "screenshot", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "taken"},
                                                           {"type": "image_url", "image_url": {"url": PNG_URL}}]}]}, "m")
    message = payload["conversationState"]["currentMessage"]["userInputMessage"]
    assert message["images"][0]["format"] == "png"
    assert message["userInputMessageContext"]["toolResults"][0]["content"] == [{"text": "taken"}]


def test_images_go_on_their_user_message():
    payload = to_codewhisperer({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}}]},
        {"role": "assistant", "content": "a dot"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}]}, "m")
    st = payload["conversationState"]
    image = {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}
    assert st["history"][0]["userInputMessage"]["images"] == [image]
    assert st["history"][0]["userInputMessage"]["content"] == "what is this?"
    assert st["currentMessage"]["userInputMessage"]["images"] == [image]


@pytest.mark.parametrize("extra,budget", [
    ({}, None), ({"model": "claude-sonnet-4-5-thinking"}, 12288), ({"reasoning_effort": "low"}, 4096),
    ({"reasoning_effort": "high"}, 24576), ({"reasoning_effort": "none"}, None),
    ({"model": "claude-sonnet-4-5-thinking", "reasoning_effort": "minimal"}, 1024),
    ({"reasoning": {"max_tokens": 3000}}, 3000), ({"reasoning": {"effort": "medium"}}, 12288),
    ({"reasoning": {"enabled": False}}, None), ({"reasoning": {"enabled": True}}, 12288),
    ({"thinking": {"type": "enabled", "budget_tokens": 5000}}, 5000), ({"thinking": {"type": "disabled"}}, None),
])
def test_thinking_is_asked_for_in_several_ways(extra, budget):
    assert thinking_budget(body(**extra)) == budget
    payload = to_codewhisperer(body(**extra), "m")
    first = payload["conversationState"]["history"][0]["userInputMessage"]["content"] if budget else None
    assert first == (thinking_prefix(budget) if budget else None)


def test_thinking_suffix_is_stripped_for_the_model_lookup():
    o = parse_options(body(model="claude-sonnet-4-5-thinking"))
    assert (o.model, o.base_model, o.thinking_budget) == ("claude-sonnet-4-5-thinking", "claude-sonnet-4-5", 12288)


REASONED = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
            {"role": "user", "content": "q2"}]


def test_assistant_reasoning_content_is_sent_back_as_thinking_when_thinking_is_on():
    payload = to_codewhisperer({"messages": REASONED, "reasoning_effort": "low"}, "m")
    assert payload["conversationState"]["history"][3]["assistantResponseMessage"]["content"] == \
        "<thinking>2+2</thinking>\n\n4"


@pytest.mark.parametrize("extra", [{}, {"reasoning_effort": "none"}, {"thinking": {"type": "disabled"}}])
def test_assistant_reasoning_content_is_dropped_when_thinking_is_off(extra):
    # The answer's text is not split then: replayed tags would teach the model to put thinking in the text.
    state = to_codewhisperer({"messages": REASONED, **extra}, "m")["conversationState"]
    assert state["history"][1]["assistantResponseMessage"]["content"] == "4"
    assert "thinking" not in json.dumps(state)


@pytest.mark.parametrize("extra,param", BAD_TOOL_REQUESTS + [({"messages": m}, p) for m, p in BAD_MESSAGES])
def test_malformed_tools_images_and_thinking_are_refused(extra, param):
    with pytest.raises(InvalidRequest) as info:
        to_codewhisperer(body(**extra), "m")
    assert info.value.param == param
    assert info.value.status == 400


def test_signed_reasoning_details_are_read_from_assistant_messages():
    detail = {"type": "reasoning.text", "text": "Add them.", "signature": "sig-1", "format": "anthropic-claude-v1"}
    messages = [{"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4", "reasoning_content": "Add them.",
                 "reasoning_details": [{"type": "reasoning.summary", "summary": "x"}, detail]},
                {"role": "user", "content": "and 3+3?"}]
    turn = parse_conversation(body(messages=messages)).turns[1]
    assert (turn.reasoning, turn.signed_reasoning) == ("Add them.", ("Add them.", "sig-1"))
    encrypted = [{**messages[1], "reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}]
    turn = parse_conversation(body(messages=[messages[0], *encrypted, messages[2]])).turns[1]
    assert (turn.signed_reasoning, turn.redacted_reasoning) == (None, "opaque")
    unsigned = [{**messages[1], "reasoning_details": [{**detail, "signature": ""}]}]
    assert parse_conversation(body(messages=[messages[0], *unsigned, messages[2]])).turns[1].signed_reasoning is None
    with pytest.raises(InvalidRequest) as info:
        parse_conversation(body(messages=[messages[0], {**messages[1], "reasoning_details": "sig"}, messages[2]]))
    assert info.value.param == "messages[1].reasoning_details"
