import pytest

from ki2api.errors import InvalidRequest
from ki2api.translate.openai_request import parse_conversation, parse_options, to_codewhisperer


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
