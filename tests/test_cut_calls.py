"""Tool calls cut off mid-input: never handed to the client, the answer ends as max_tokens, the model is told."""
import json

from ki2api.translate import anthropic_request
from ki2api.translate.anthropic_response import EventStream, collect_message
from ki2api.translate.answer import Answer
from ki2api.translate.cut_calls import MARK, complete
from ki2api.translate.history import build_payload
from ki2api.translate.openai_response import ChunkStream
from ki2api.translate.openai_response import collect_message as collect_completion
from ki2api.upstream.events import LengthExceeded, TextDelta, ToolUseDelta
from tests.helpers.anthropic_schema import validate_event, validate_message
from tests.helpers.openai_schema import validate

BIG = '{"file_path": "/tmp/a.py", "content": "' + "x = 1\\n" * 50
CUT = [TextDelta("Writing the file."),
       ToolUseDelta("t1", "Read", '{"file_path": "/tmp/b.py"}', stop=True),
       ToolUseDelta("t2", "Write", BIG[:40]), ToolUseDelta("t2", "Write", BIG[40:]),
       LengthExceeded()]


def answer():
    return Answer(prompt_estimate=100, context_window=200_000)


def test_complete_accepts_an_object_or_nothing_and_refuses_a_cut():
    assert complete("") and complete('{"a": 1}') and complete("  {} ")
    assert not complete('{"a": ') and not complete(BIG) and not complete("[1]")


def test_the_whole_message_keeps_the_complete_call_and_drops_the_cut_one():
    message = collect_message(answer(), CUT, "claude-sonnet-4-5")
    validate_message(message)
    assert message["stop_reason"] == "max_tokens"
    kinds = [block["type"] for block in message["content"]]
    assert kinds == ["text", "tool_use"] + ["text"]
    assert message["content"][1]["input"] == {"file_path": "/tmp/b.py"}
    assert all(block.get("name") != "Write" for block in message["content"])
    note = message["content"][2]["text"]
    assert MARK in note and "`Write`" in note and "smaller pieces" in note


def test_the_stream_never_opens_a_block_for_the_cut_call():
    pairs = list(EventStream("claude-sonnet-4-5").events(answer(), CUT))
    for name, data in pairs:
        validate_event(name, data)
    starts = [d["content_block"] for n, d in pairs if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "text"]
    assert [b.get("name") for b in starts if b["type"] == "tool_use"] == ["Read"]
    json_pieces = [d["delta"]["partial_json"] for n, d in pairs
                   if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert [json.loads(p) for p in json_pieces] == [{"file_path": "/tmp/b.py"}]
    assert pairs[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_a_lone_cut_call_ends_as_length_with_no_tool_calls_on_openai():
    events = [ToolUseDelta("t2", "Write", BIG)]
    chunks = list(ChunkStream("claude-x", include_usage=True).chunks(answer(), events))
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    text = "".join(d.get("content") or "" for d in deltas)
    assert text.startswith(MARK)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    whole = collect_completion(answer(), events, "claude-x")
    assert whole["choices"][0]["finish_reason"] == "length"
    assert "tool_calls" not in whole["choices"][0]["message"]


def test_the_next_turn_carries_the_note_in_the_tool_result():
    cut = collect_message(answer(), CUT, "claude-sonnet-4-5")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "tools": [
                {"name": "Read", "input_schema": {"type": "object"}},
                {"name": "Write", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "write a.py"},
                         {"role": "assistant", "content": cut["content"]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                       "content": "print(1)"}]}]}
    payload = build_payload(anthropic_request.parse_conversation(body), "claude-sonnet-4.5")
    results = payload["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"][
        "toolResults"]
    text = results[0]["content"][0]["text"]
    assert text.startswith("print(1)\n\n" + MARK) and "`Write`" in text
    history_text = payload["conversationState"]["history"][-1]["assistantResponseMessage"]["content"]
    assert MARK in history_text  # the assistant's own note stays in its turn too
    assert body["messages"][2]["content"][0]["content"] == "print(1)"  # the client's body is untouched
