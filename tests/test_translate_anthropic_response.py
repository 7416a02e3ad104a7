"""Answer parts -> Anthropic stream events and messages, on literal events and the real captured frames."""
import json

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from ki2api.translate.anthropic_response import EventStream, collect_message, usage_dict
from ki2api.translate.answer import Answer, Usage
from ki2api.translate.tools import ToolNames
from ki2api.upstream.events import (ContextUsage, LengthExceeded, ReasoningDelta, TextDelta, TokenUsage,
                                    ToolUseDelta, iter_events)
from tests.helpers.anthropic_schema import validate_event, validate_message
from tests.fakes.kiro.frames import encode_frame
from tests.helpers.capture import IMAGE_TOOL_FLOW_06
from tests.helpers.fixtures import capture_stream

MODEL = "claude-sonnet-4-5"


def fixture_events(name):
    return list(iter_events([capture_stream(name)]))


def image_tool_flow_events():
    """The decoded `[eventType] {json}` lines of image-tool-flow/06, re-encoded as real frames and decoded."""
    row = json.loads(IMAGE_TOOL_FLOW_06.read_text())
    frames = []
    for line in row["resBodyEventstream"].splitlines():
        kind, _, payload = line.partition("] ")
        headers = {":event-type": kind[1:], ":content-type": "application/json", ":message-type": "event"}
        frames.append(encode_frame(headers, payload.encode()))
    return list(iter_events([b"".join(frames)]))


def answer(**kwargs):
    return Answer(prompt_estimate=100, context_window=200_000, **kwargs)


def stream(events, **kwargs):
    """(name, data) pairs of a whole stream, each checked against the SDK's types."""
    pairs = list(EventStream(MODEL).events(answer(**kwargs), events))
    for name, data in pairs:
        validate_event(name, data)
    return pairs


def accumulate(pairs):
    """The message the anthropic SDK's own stream accumulator builds from our events."""
    snapshot, bufs = None, {}
    for name, data in pairs:
        if name != "ping":
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def test_text_stream_is_exactly_anthropics_sequence():
    pairs = stream([TextDelta("Hel"), TextDelta("lo"), ContextUsage(2.0)])
    assert [name for name, _ in pairs] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    start = pairs[0][1]["message"]
    assert start["model"] == MODEL and start["id"].startswith("msg_") and start["content"] == []
    assert start["usage"]["input_tokens"] == 100  # the estimate; message_delta carries the final figure
    assert pairs[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [d["delta"] for _, d in pairs[3:5]] == [{"type": "text_delta", "text": "Hel"},
                                                   {"type": "text_delta", "text": "lo"}]
    assert pairs[5][1] == {"type": "content_block_stop", "index": 0}
    delta = pairs[6][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] == 4000  # 2 % of 200k, as the upstream reported
    assert delta["usage"]["output_tokens"] > 0


def test_real_tool_call_frames_become_one_tool_use_block():
    pairs = stream(fixture_events("14"))
    names = [name for name, _ in pairs]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    block = pairs[2][1]["content_block"]
    assert block == {"type": "tool_use", "id": "tooluse_QSfOosa0r0YluOOQ0MolaE", "name": "introspect", "input": {}}
    pieces = [d["delta"]["partial_json"] for n, d in pairs if n == "content_block_delta"]
    assert len(pieces) == 1  # the call is held until complete, then given whole (never a cut-off call)
    assert json.loads("".join(pieces)) == {"__tool_use_purpose": "查找关于界面中百分比显示的文档说明",
                                           "query": "percentage display bottom bar context window usage"}
    assert pairs[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_real_text_then_tool_call_gives_two_blocks_in_order():
    pairs = stream(image_tool_flow_events())
    starts = [d for n, d in pairs if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use")]
    stops = [d["index"] for n, d in pairs if n == "content_block_stop"]
    assert stops == [0, 1]
    text = "".join(d["delta"]["text"] for n, d in pairs if n == "content_block_delta" and d["index"] == 0)
    assert text == "我需要先看看你说的图片。让我查看当前目录下的图片文件。"
    message = accumulate(pairs)
    assert message.stop_reason == "tool_use"
    assert message.content[1].name == "glob"
    assert message.content[1].input == {"pattern": "**/*.{png,jpg,jpeg,gif,webp}",
                                        "path": "/home/wjs/Desktop/2026.1/创业管理/微瓷科技", "limit": 20}
    # 8.4565 % of haiku's 200k window
    assert message.usage.input_tokens == round(8.456500053405762 * 2000)


@pytest.mark.parametrize("events", [
    pytest.param(lambda: fixture_events("06"), id="06-text"),
    pytest.param(lambda: fixture_events("14"), id="14-tool"),
    pytest.param(image_tool_flow_events, id="image-tool-flow-06"),
])
def test_stream_and_whole_message_agree(events):
    streamed = accumulate(stream(events()))
    whole = collect_message(answer(), events(), MODEL)
    validate_message(whole)
    assert streamed.to_dict()["content"] == whole["content"]
    assert (streamed.stop_reason, streamed.usage.input_tokens, streamed.usage.output_tokens) == (
        whole["stop_reason"], whole["usage"]["input_tokens"], whole["usage"]["output_tokens"])


def test_two_tool_calls_get_their_own_blocks_and_client_names():
    names = ToolNames()
    upstream_name = names.upstream("mcp__server/read file")
    events = [TextDelta("Reading."),
              ToolUseDelta("tooluse_a", upstream_name), ToolUseDelta("tooluse_a", upstream_name, '{"p": 1}'),
              ToolUseDelta("tooluse_a", upstream_name, stop=True),
              ToolUseDelta("tooluse_b", "other", '{"q": 2}'), ToolUseDelta("tooluse_b", "other", stop=True)]
    pairs = stream(events, names=names)
    starts = [d["content_block"] for n, d in pairs if n == "content_block_start"]
    assert [(b["type"], b.get("name")) for b in starts] == [
        ("text", None), ("tool_use", "mcp__server/read file"), ("tool_use", "other")]
    whole = collect_message(answer(names=names), events, MODEL)
    assert whole["content"][1:] == [
        {"type": "tool_use", "id": "tooluse_a", "name": "mcp__server/read file", "input": {"p": 1}},
        {"type": "tool_use", "id": "tooluse_b", "name": "other", "input": {"q": 2}}]
    assert whole["stop_reason"] == "tool_use"


def test_tool_call_without_arguments_has_empty_input():
    whole = collect_message(answer(), [ToolUseDelta("t1", "now"), ToolUseDelta("t1", "now", stop=True)], MODEL)
    assert whole["content"] == [{"type": "tool_use", "id": "t1", "name": "now", "input": {}}]


def test_legacy_thinking_becomes_a_thinking_block_never_text():
    events = [TextDelta("<thin"), TextDelta("king>\nLet me think"), TextDelta(" hard.</thinking>"),
              TextDelta("\n\nThe answer"), TextDelta(" is 4.")]
    pairs = stream(events, thinking=True)
    starts = [d["content_block"] for n, d in pairs if n == "content_block_start"]
    assert starts == [{"type": "thinking", "thinking": "", "signature": ""}, {"type": "text", "text": ""}]
    deltas = [d["delta"] for n, d in pairs if n == "content_block_delta"]
    thought = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    text = "".join(d["text"] for d in deltas if d["type"] == "text_delta")
    assert (thought, text) == ("Let me think hard.", "The answer is 4.")
    whole = collect_message(answer(thinking=True), events, MODEL)
    assert whole["content"] == [{"type": "thinking", "thinking": "Let me think hard.", "signature": ""},
                                {"type": "text", "text": "The answer is 4."}]
    validate_message(whole)


def test_upstream_reasoning_with_signature_ends_with_signature_delta():
    pairs = stream([ReasoningDelta("step 1. "), ReasoningDelta("step 2.", signature="sig-abc"), TextDelta("Done")])
    names = [n for n, _ in pairs]
    at_stop = names.index("content_block_stop")
    assert pairs[at_stop - 1][1]["delta"] == {"type": "signature_delta", "signature": "sig-abc"}
    message = accumulate(pairs)
    assert message.content[0].thinking == "step 1. step 2." and message.content[0].signature == "sig-abc"
    assert message.content[1].text == "Done"


def test_a_signature_sent_alone_after_the_text_is_kept():
    pairs = stream([ReasoningDelta("step 1."), ReasoningDelta("", signature="sig-late"), TextDelta("Done")])
    assert ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "signature_delta", "signature": "sig-late"}}) in pairs
    message = accumulate(pairs)
    assert (message.content[0].thinking, message.content[0].signature) == ("step 1.", "sig-late")


def test_stop_sequence_is_reported():
    pairs = stream([TextDelta("one two ST"), TextDelta("OP three")], stops=["STOP"])
    text = "".join(d["delta"]["text"] for n, d in pairs if n == "content_block_delta")
    assert text == "one two "
    assert pairs[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}


def test_max_tokens_cut_and_upstream_length_limit_both_say_max_tokens():
    cut = stream([TextDelta("word " * 50)] * 10, max_tokens=20)
    assert cut[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert sum(1 for n, _ in cut if n == "content_block_delta") == 1
    limited = collect_message(answer(), [TextDelta("partial"), LengthExceeded()], MODEL)
    assert limited["stop_reason"] == "max_tokens"


def test_empty_answer_has_no_blocks():
    pairs = stream([ContextUsage(1.0)])
    assert [n for n, _ in pairs] == ["message_start", "ping", "message_delta", "message_stop"]
    assert collect_message(answer(), [], MODEL)["content"] == []


def test_usage_separates_cache_reads_as_anthropic_does():
    assert usage_dict(Usage(input_tokens=150, output_tokens=20, cache_read_tokens=50)) == {
        "input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 50}
    whole = collect_message(answer(), [TextDelta("x"), TokenUsage(100, 7, 50)], MODEL)
    assert whole["usage"]["input_tokens"] == 100 and whole["usage"]["cache_read_input_tokens"] == 50
    assert whole["usage"]["output_tokens"] == 7


def test_cut_closes_the_open_block_and_ends_as_max_tokens():
    stream_state, cut_answer = EventStream(MODEL), answer()
    parts = list(cut_answer.parts([TextDelta("half"), ToolUseDelta("t1", "run", '{"a": 1}'), TextDelta("more")]))
    for part in parts:  # the stream broke in the text after the tool call
        stream_state.part(part)
    pairs = stream_state.cut(cut_answer)
    for name, data in pairs:
        validate_event(name, data)
    assert [n for n, _ in pairs] == ["content_block_stop", "message_delta", "message_stop"]
    assert pairs[0][1]["index"] == 2
    assert pairs[1][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert pairs[1][1]["usage"] == {"output_tokens": cut_answer.usage.output_tokens}


def test_a_thinking_block_without_a_signature_still_ends_with_a_signature_delta():
    """Anthropic always sends one; the Vercel AI SDK reads the signature only from it (issue 18)."""
    pairs = stream([TextDelta("<thinking>hm</thinking>\n\n"), TextDelta("4")], thinking=True)
    at_stop = [n for n, _ in pairs].index("content_block_stop")
    assert pairs[at_stop - 1][1]["delta"] == {"type": "signature_delta", "signature": ""}
    assert accumulate(pairs).content[0].signature == ""


def test_redacted_reasoning_becomes_a_redacted_thinking_block():
    events = [ReasoningDelta("", redacted="opaque=="), ReasoningDelta("seen", signature="s1"), TextDelta("4")]
    pairs = stream(events)
    starts = [d["content_block"] for n, d in pairs if n == "content_block_start"]
    assert starts[0] == {"type": "redacted_thinking", "data": "opaque=="}
    assert [b.type for b in accumulate(pairs).content] == ["redacted_thinking", "thinking", "text"]
    whole = collect_message(answer(), events, MODEL)
    validate_message(whole)
    assert whole["content"][:2] == [{"type": "redacted_thinking", "data": "opaque=="},
                                    {"type": "thinking", "thinking": "seen", "signature": "s1"}]


def test_cache_writes_kiro_reports_are_cache_creation_tokens():
    whole = collect_message(answer(), [TextDelta("x"), TokenUsage(100, 7, 50, 30)], MODEL)
    validate_message(whole)
    assert (whole["usage"]["input_tokens"], whole["usage"]["cache_read_input_tokens"],
            whole["usage"]["cache_creation_input_tokens"]) == (100, 50, 30)
