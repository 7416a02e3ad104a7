"""Answer parts -> OpenAI chunks and messages, on the real captured tool-call frames."""
import json

from ki2api.translate.answer import Answer
from ki2api.translate.openai_response import ChunkStream, collect_message
from ki2api.translate.tools import ToolNames
from ki2api.upstream.events import ReasoningDelta, TextDelta, ToolUseDelta, iter_events
from tests.fakes.kiro.frames import json_frame
from tests.fakes.kiro.script import fixture_bytes
from tests.helpers.capture import decoded_events
from tests.helpers.openai_schema import validate

GLOB_ARGS = {"pattern": "**/*.{png,jpg,jpeg,gif,webp}", "path": "/home/wjs/Desktop/2026.1/创业管理/微瓷科技",
             "limit": 20}


def fixture_events(name):
    return list(iter_events([fixture_bytes(name)]))


def image_flow_events():
    return list(iter_events([b"".join(json_frame(e["event"], e["payload"]) for e in decoded_events())]))


def stream(events, names=None, thinking=False):
    chunks = list(ChunkStream("claude-x", include_usage=True).chunks(
        Answer(100, 200_000, names=names, thinking=thinking), events))
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    return chunks


def deltas(chunks):
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_fixture_14_streams_one_tool_call_in_openai_form():
    chunks = stream(fixture_events("14"))
    calls = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d]
    assert calls[0] == {"index": 0, "id": "tooluse_QSfOosa0r0YluOOQ0MolaE", "type": "function",
                        "function": {"name": "introspect", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"} for c in calls[1:])
    assert len(calls) == 1 + 1  # name first, then the whole input: a call is held until complete
    args = json.loads("".join(c["function"]["arguments"] for c in calls))
    assert args == {"__tool_use_purpose": "查找关于界面中百分比显示的文档说明",
                    "query": "percentage display bottom bar context window usage"}
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finishing] == ["tool_calls"]
    assert chunks[-1]["usage"]["prompt_tokens"] == round(1.9767999649047852 * 2000)


def test_fixture_14_whole_message():
    body = collect_message(Answer(100, 200_000), fixture_events("14"), "claude-x")
    validate(body, "CreateChatCompletionResponse")
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    [call] = message["tool_calls"]
    assert call["id"] == "tooluse_QSfOosa0r0YluOOQ0MolaE" and call["type"] == "function"
    assert call["function"]["name"] == "introspect"
    assert json.loads(call["function"]["arguments"])["query"].startswith("percentage display")


def test_text_then_tool_call_from_the_image_flow_capture():
    chunks = stream(image_flow_events())
    ds = deltas(chunks)
    text = "".join(d.get("content") or "" for d in ds)
    assert text == "我需要先看看你说的图片。让我查看当前目录下的图片文件。"
    first_call = next(i for i, d in enumerate(ds) if "tool_calls" in d)
    assert not any(d.get("content") for d in ds[first_call:])  # all text came before the call
    args = "".join(d["tool_calls"][0]["function"]["arguments"] for d in ds if "tool_calls" in d)
    assert json.loads(args) == GLOB_ARGS
    body = collect_message(Answer(100, 200_000), image_flow_events(), "claude-x")
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == text
    assert json.loads(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == GLOB_ARGS


def two_calls(first_name="Read", second_name="Grep"):
    return [TextDelta("Checking both."),
            ToolUseDelta("tooluse_a", first_name), ToolUseDelta("tooluse_a", first_name, ""),
            ToolUseDelta("tooluse_a", first_name, '{"path":'), ToolUseDelta("tooluse_a", first_name, '"a.py"}'),
            ToolUseDelta("tooluse_a", first_name, stop=True),
            ToolUseDelta("tooluse_b", second_name), ToolUseDelta("tooluse_b", second_name, '{"q":"x"}'),
            ToolUseDelta("tooluse_b", second_name, stop=True)]


def test_parallel_calls_get_their_own_indexes():
    ds = deltas(stream(two_calls()))
    starts = [d["tool_calls"][0] for d in ds if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert [(s["index"], s["id"], s["function"]["name"]) for s in starts] == [
        (0, "tooluse_a", "Read"), (1, "tooluse_b", "Grep")]
    body = collect_message(Answer(1, 200_000), two_calls(), "m")
    calls = body["choices"][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"path": "a.py"}, {"q": "x"}]
    assert body["choices"][0]["message"]["content"] == "Checking both."


def test_upstream_tool_names_map_back_to_the_client_names():
    names = ToolNames()
    long = "mcp__server__" + "y" * 80
    events = two_calls(names.upstream(long), names.upstream("web.search"))
    starts = [d["tool_calls"][0]["function"]["name"] for d in deltas(stream(events, names))
              if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert starts == [long, "web.search"]
    calls = collect_message(Answer(1, 200_000, names=names), events, "m")["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == [long, "web.search"]


def test_thinking_comes_out_as_reasoning_content():
    events = [TextDelta("<thinking>\nTwo plus"), TextDelta(" two.</thinking>\n\n"), TextDelta("4")]
    ds = deltas(stream(events, thinking=True))
    assert "".join(d.get("reasoning_content") or "" for d in ds) == "Two plus two."
    assert "".join(d.get("content") or "" for d in ds) == "4"
    message = collect_message(Answer(1, 200_000, thinking=True), events, "m")["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("4", "Two plus two.")


def test_upstream_reasoning_events_become_reasoning_content_and_a_lone_signature_adds_no_chunk():
    events = [ReasoningDelta("Two plus two."), ReasoningDelta("", signature="sig"), TextDelta("4")]
    chunks = stream(events)
    ds = deltas(chunks)
    assert [d.get("reasoning_content") for d in ds if "reasoning_content" in d] == ["Two plus two."]
    assert "".join(d.get("content") or "" for d in ds) == "4"
    message = collect_message(Answer(1, 200_000), events, "m")["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("4", "Two plus two.")


def test_a_reasoning_signature_comes_in_reasoning_details():
    events = [ReasoningDelta("Add"), ReasoningDelta(" them."), ReasoningDelta("", signature="sig-1"), TextDelta("4")]
    got = deltas(stream(events))
    assert [d.get("reasoning_content") for d in got if "reasoning_content" in d] == ["Add", " them."]
    assert [d["reasoning_details"] for d in got if "reasoning_details" in d] == [[
        {"type": "reasoning.text", "text": "Add them.", "signature": "sig-1", "format": "anthropic-claude-v1",
         "index": 0}]]
    message = collect_message(Answer(100, 200_000), events, "claude-x")
    validate(message, "CreateChatCompletionResponse")
    assert message["choices"][0]["message"]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "Add them.", "signature": "sig-1", "format": "anthropic-claude-v1",
         "index": 0}]


def test_redacted_reasoning_comes_as_an_encrypted_detail():
    events = [ReasoningDelta("", redacted="opaque=="), ReasoningDelta("seen"), ReasoningDelta("", signature="s1"),
              TextDelta("4")]
    encrypted = {"type": "reasoning.encrypted", "data": "opaque==", "format": "anthropic-claude-v1", "index": 0}
    signed = {"type": "reasoning.text", "text": "seen", "signature": "s1", "format": "anthropic-claude-v1",
              "index": 1}
    assert [d["reasoning_details"] for d in deltas(stream(events)) if "reasoning_details" in d] == [
        [encrypted], [signed]]
    message = collect_message(Answer(100, 200_000), events, "claude-x")["choices"][0]["message"]
    assert message["reasoning_details"] == [encrypted, signed] and message["reasoning_content"] == "seen"
