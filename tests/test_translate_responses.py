"""The Responses translators with literal dicts: request items -> Conversation, answer parts -> items and events."""
import json

import pytest

from ki2api.errors import InvalidRequest, RateLimited, UpstreamError
from ki2api.translate.answer import Answer, ReasoningPart, TextPart, ToolArgs, ToolEnd, ToolStart
from ki2api.translate.history import build_payload
from ki2api.translate.reasoning_items import decode_reasoning, encode_reasoning, reasoning_signature
from ki2api.translate.responses_request import (function_tools, input_items, parse_conversation, parse_options,
                                                with_ids)
from ki2api.translate.responses_response import ResponseState
from tests.helpers.kiro_request import assert_well_formed
from tests.helpers.openai_schema import validate

MODEL = "claude-sonnet-4-5"
AGENTS = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
    {"type": "function", "name": "close_agent", "strict": False,
     "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}}]}


def conversation(body):
    body = {"model": MODEL, **body}
    return parse_conversation(body, input_items(body), parse_options(body).thinking_budget)


def test_namespace_tools_are_flattened_and_a_call_comes_back_with_its_namespace():
    tools, namespaces = function_tools([AGENTS, {"type": "web_search"}])
    assert [t["function"]["name"] for t in tools] == ["multi_agent_v1__close_agent"]
    assert namespaces == {"multi_agent_v1__close_agent": ("multi_agent_v1", "close_agent")}
    state = ResponseState(MODEL, {}, namespaces=namespaces)
    state.part(ToolStart(0, "tooluse_1", "multi_agent_v1__close_agent"))
    state.part(ToolEnd(0))
    assert state.output[0]["namespace"] == "multi_agent_v1" and state.output[0]["name"] == "close_agent"
    # Given back, the call names the same Kiro tool.
    history = [{"role": "user", "content": "close it"},
               {"type": "function_call", "call_id": "tooluse_1", "namespace": "multi_agent_v1",
                "name": "close_agent", "arguments": '{"target": "a1"}'},
               {"type": "function_call_output", "call_id": "tooluse_1", "output": "closed"}]
    payload = build_payload(conversation({"input": history, "tools": [AGENTS]}), "claude-sonnet-4.5")
    assert_well_formed(payload)
    use = payload["conversationState"]["history"][-1]["assistantResponseMessage"]["toolUses"][0]
    assert use["name"] == "multi_agent_v1__close_agent" and use["input"] == {"target": "a1"}


def test_reasoning_envelope_carries_text_and_signature():
    content = encode_reasoning("I think, therefore.", "sig-123")
    item = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "short"}], "encrypted_content": content}
    assert decode_reasoning(item, "input[0]") == "I think, therefore."
    assert reasoning_signature(item) == "sig-123"
    foreign = {**item, "encrypted_content": "gAAAAB-openai-opaque"}
    assert decode_reasoning(foreign, "input[0]") == "short" and reasoning_signature(foreign) is None


def test_a_signature_arriving_after_the_text_lands_in_the_item():
    state = ResponseState(MODEL, {})
    events = state.part(ReasoningPart("Thinking.")) + state.part(ReasoningPart("", signature="sig-9"))
    events += state.part(TextPart("Answer."))
    reasoning = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert reasoning_signature(reasoning) == "sig-9"
    for event in events:
        validate(event, "ResponseStreamEvent")


@pytest.mark.parametrize("error, code", [(RateLimited("slow down"), "rate_limit_exceeded"),
                                         (UpstreamError("stream broke"), "server_error")])
def test_failure_after_the_first_byte_is_response_failed(error, code):
    state = ResponseState(MODEL, {"metadata": {}, "parallel_tool_calls": True, "tool_choice": "auto",
                                  "instructions": None, "temperature": 1.0, "top_p": 1.0})
    state.start()
    state.part(ToolStart(0, "tooluse_1", "read"))
    state.part(ToolArgs(0, '{"pa'))
    [failed] = state.fail(error, Answer(10, 200_000))
    validate(failed, "ResponseStreamEvent")
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": code, "message": error.message}
    assert failed["response"]["output"][0]["status"] == "incomplete"


def test_input_items_are_stored_with_ids_and_text_parts():
    items = with_ids([{"role": "user", "content": "hi"},
                      {"type": "function_call_output", "call_id": "c1", "output": "ok"}])
    assert items[0]["id"].startswith("msg_") and items[0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert items[1]["id"].startswith("fco_") and items[1]["status"] == "completed"
    validate({"object": "list", "data": items, "has_more": False, "first_id": items[0]["id"],
              "last_id": items[1]["id"]}, "ResponseItemList")


def test_text_format_json_object_and_tool_choice_notes_both_reach_the_current_message():
    conv = conversation({"input": "list them", "tools": [{"type": "function", "name": "ls", "parameters": {}}],
                         "tool_choice": "required", "text": {"format": {"type": "json_object"}}})
    assert "calling at least one of the available tools" in conv.instruction
    assert "one valid JSON object" in conv.instruction


@pytest.mark.parametrize("body, param", [
    ({"input": "x", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "mcp"}]}]}, "tools[0].tools"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": "x", "metadata": {"k": 1}}, "metadata"),
])
def test_refusals_name_the_field(body, param):
    with pytest.raises(InvalidRequest) as caught:
        conversation(body)
    assert caught.value.param == param


def test_the_reasoning_effort_none_turns_thinking_off_and_a_thinking_model_on():
    assert parse_options({"model": MODEL, "reasoning": {"effort": "none"}}).thinking_budget is None
    assert parse_options({"model": MODEL, "reasoning": {"effort": "high"}}).thinking_budget == 24576
    assert parse_options({"model": MODEL + "-thinking"}).thinking_budget is not None
    assert json.loads(json.dumps(parse_options({"model": MODEL}).echo))["store"] is True
