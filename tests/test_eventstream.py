"""The event-stream decoder on the captured Kiro bytes, at every chunk boundary, and on broken input."""
from __future__ import annotations

import json
import struct
import zlib

import pytest

from ki2api.upstream.eventstream import EventStreamDecoder, EventStreamError, parse_headers
from ki2api.upstream.events import (NO_ANSWER, NOT_AN_EVENT_STREAM, ContextUsage, LengthExceeded, Metering, NoAnswer,
                                    ReasoningDelta, TextDelta, TokenUsage, ToolUseDelta, UpstreamException,
                                    iter_events)
from tests.fakes.kiro.frames import encode_frame, event_frame, exception_frame
from tests.helpers.fixtures import capture_stream

CAPTURES = ["06", "14", "16"]


def capture(name: str) -> bytes:
    return capture_stream(name)


def decode_all(data: bytes, chunk: int) -> list:
    decoder = EventStreamDecoder()
    frames = []
    for at in range(0, len(data), chunk):
        frames += decoder.feed(data[at:at + chunk])
    decoder.finish()
    return frames


@pytest.mark.parametrize("name", CAPTURES)
def test_every_captured_frame_decodes_with_kiro_headers(name):
    frames = decode_all(capture(name), len(capture(name)))
    assert frames[0].event_type == "initial-response"
    assert all(f.message_type == "event" for f in frames)
    assert all(list(f.headers) == [":event-type", ":content-type", ":message-type"] for f in frames)
    assert all(isinstance(json.loads(f.payload), dict) for f in frames)
    assert [f.event_type for f in frames[-2:]] == ["contextUsageEvent", "meteringEvent"]


@pytest.mark.parametrize("name", CAPTURES)
def test_split_at_every_byte_boundary_gives_the_same_frames(name):
    data = capture(name)
    whole = decode_all(data, len(data))
    for cut in range(1, len(data)):
        decoder = EventStreamDecoder()
        frames = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        decoder.finish()
        assert frames == whole, f"split at byte {cut}"


@pytest.mark.parametrize("name", CAPTURES)
def test_byte_by_byte_feeding_yields_each_frame_on_its_last_byte(name):
    data = capture(name)
    decoder = EventStreamDecoder()
    completed_at = [i for i in range(len(data)) if decoder.feed(data[i:i + 1])]
    ends, at = [], 0
    while at < len(data):
        at += struct.unpack_from(">I", data, at)[0]
        ends.append(at - 1)
    assert completed_at == ends


def test_text_fixture_becomes_41_text_deltas_then_usage():
    events = list(iter_events([capture("06")]))
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 41
    assert isinstance(events[-2], ContextUsage) and events[-2].percentage > 0
    assert isinstance(events[-1], Metering) and events[-1].unit == "credit"


def test_tool_fixture_pieces_concatenate_to_valid_json_arguments():
    events = [e for e in iter_events([capture("14")]) if isinstance(e, ToolUseDelta)]
    assert {e.tool_use_id for e in events} == {"tooluse_QSfOosa0r0YluOOQ0MolaE"}
    assert events[0].name == "introspect" and events[-1].stop
    arguments = json.loads("".join(e.input for e in events))
    assert arguments["query"] == "percentage display bottom bar context window usage"


def test_repeated_identical_chunks_are_kept():
    frames = [event_frame("assistantResponseEvent", {"content": "格"})] * 2
    assert [e.text for e in iter_events(frames)] == ["格", "格"]


def test_nested_payload_and_metadata_token_usage():
    frames = [event_frame("assistantResponseEvent", {"assistantResponseEvent": {"content": "hi"}}),
              event_frame("metadataEvent", {"tokenUsage": {"uncachedInputTokens": 12, "outputTokens": 3,
                                                           "cacheReadInputTokens": 4}})]
    assert list(iter_events(frames)) == [TextDelta("hi"), TokenUsage(12, 3, 4, 0)]


def test_unknown_events_are_skipped():
    frames = [event_frame("followupPromptEvent", {"x": 1}), event_frame("assistantResponseEvent", {"content": "a"})]
    assert list(iter_events(frames)) == [TextDelta("a")]


def test_exception_frame_raises_with_its_kind_and_message():
    with pytest.raises(UpstreamException) as caught:
        list(iter_events([exception_frame("ThrottlingException", "slow down")]))
    assert (caught.value.kind, caught.value.message) == ("ThrottlingException", "slow down")


def test_content_length_exceeded_is_a_length_stop_not_an_error():
    assert list(iter_events([exception_frame("ContentLengthExceededException", "too long")])) == [LengthExceeded()]


def test_bad_message_crc_is_rejected():
    frame = bytearray(event_frame("assistantResponseEvent", {"content": "hello"}))
    frame[-6] ^= 0x01
    with pytest.raises(EventStreamError, match="message CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_good_frames_before_a_broken_one_in_the_same_read_are_delivered_then_the_error():
    broken = bytearray(event_frame("assistantResponseEvent", {"content": "never shown"}))
    broken[-6] ^= 0x01
    read = INITIAL + event_frame("assistantResponseEvent", {"content": "kept"}) + bytes(broken)
    decoder = EventStreamDecoder()
    assert [f.event_type for f in decoder.feed(read)] == ["initial-response", "assistantResponseEvent"]
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.feed(b"")
    with pytest.raises(EventStreamError, match="message CRC"):
        decoder.finish()
    received = []
    with pytest.raises(EventStreamError, match="message CRC"):
        for event in iter_events([read]):
            received.append(event)
    assert received == [TextDelta("kept")]


def test_bad_prelude_crc_is_rejected():
    frame = bytearray(event_frame("assistantResponseEvent", {"content": "hello"}))
    frame[9] ^= 0xFF
    with pytest.raises(EventStreamError, match="prelude CRC"):
        EventStreamDecoder().feed(bytes(frame))


def test_absurd_length_is_rejected_before_buffering():
    prelude = struct.pack(">II", 64 * 1024 * 1024, 0)
    with pytest.raises(EventStreamError, match="out of bounds"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_stream_ending_inside_a_frame_is_an_error():
    data = capture("06")
    with pytest.raises(EventStreamError, match="ended inside a frame"):
        list(iter_events([data[:-5]]))


def test_non_json_payload_is_an_error():
    frame = encode_frame({":event-type": "assistantResponseEvent", ":message-type": "event"}, b"<html>")
    with pytest.raises(EventStreamError, match="invalid JSON"):
        list(iter_events([frame]))


def test_all_header_value_types_decode():
    block = b"".join([
        b"\x01a\x00", b"\x01b\x01", b"\x01c\x02\xff", b"\x01d\x03\x01\x00", b"\x01e\x04\x00\x00\x00\x07",
        b"\x01f\x05" + struct.pack(">q", -2), b"\x01g\x06\x00\x02ab", b"\x01h\x07\x00\x02hi",
        b"\x01i\x08" + struct.pack(">q", 0), b"\x01j\x09" + bytes(range(16))])
    headers = parse_headers(block)
    assert [headers[k] for k in "abcdefgh"] == [True, False, -1, 256, 7, -2, b"ab", "hi"]
    assert headers["i"].year == 1970 and headers["j"].bytes == bytes(range(16))


def test_unknown_header_type_is_an_error():
    with pytest.raises(EventStreamError, match="unknown header value type"):
        parse_headers(b"\x01a\x0c")


INITIAL = encode_frame({":event-type": "initial-response", ":content-type": "application/x-amz-json-1.0",
                        ":message-type": "event"}, b'{"conversationId":""}')
USAGE = event_frame("contextUsageEvent", {"contextUsagePercentage": 1.5})
METERING = event_frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01})


@pytest.mark.parametrize("chunks", [[], [b""], [INITIAL], [INITIAL, USAGE, METERING], [USAGE + METERING],
                                    [INITIAL, event_frame("assistantResponseEvent", {"content": ""}), METERING]],
                         ids=["no-chunks", "empty-body", "initial-only", "usage-and-metering", "one-chunk",
                              "empty-content"])
def test_a_200_without_any_answer_event_is_no_answer(chunks):
    with pytest.raises(NoAnswer) as info:
        list(iter_events(chunks))
    assert str(info.value) == NO_ANSWER == "Kiro answered 200 without an answer"


@pytest.mark.parametrize("body", [b"<html><body>Service Unavailable</body></html>", b'{"message": "scripted"}',
                                  b"{}", b"OK"], ids=["html", "json", "short-json", "two-bytes"])
def test_a_200_whose_body_is_not_an_event_stream_says_so(body):
    with pytest.raises(NoAnswer) as info:
        list(iter_events([body[:5], body[5:]]))
    assert str(info.value) == NOT_AN_EVENT_STREAM == "Kiro answered 200 with a body that is not an event stream"


def test_a_broken_frame_after_a_good_one_is_a_broken_stream_not_a_foreign_body():
    with pytest.raises(EventStreamError) as info:
        list(iter_events([INITIAL + b"<html>not a frame at all</html>"]))
    assert not isinstance(info.value, NoAnswer) and "CRC" in str(info.value)


@pytest.mark.parametrize("answer", [event_frame("assistantResponseEvent", {"content": "hi"}),
                                    event_frame("reasoningContentEvent", {"text": "hm"}),
                                    event_frame("toolUseEvent", {"name": "ls", "toolUseId": "tooluse_1"}),
                                    exception_frame("ContentLengthExceededException", "too long")],
                         ids=["text", "reasoning", "tool-use", "length-stop"])
def test_usage_before_the_answer_is_held_back_then_given_in_order(answer):
    events = list(iter_events([INITIAL, USAGE, answer, METERING]))
    assert events[0] == ContextUsage(1.5) and events[-1] == Metering(0.01, "credit")
    assert isinstance(events[1], (TextDelta, ReasoningDelta, ToolUseDelta, LengthExceeded)) and len(events) == 3


def test_a_reasoning_signature_may_come_in_a_frame_of_its_own():
    frames = [event_frame("reasoningContentEvent", {"text": "hm"}),
              event_frame("reasoningContentEvent", {"signature": "sig-1"}),
              event_frame("reasoningContentEvent", {"redactedContent": "opaque"}),
              event_frame("reasoningContentEvent", {"text": "", "signature": ""})]
    assert list(iter_events([b"".join(frames)])) == [
        ReasoningDelta("hm"), ReasoningDelta("", "sig-1"), ReasoningDelta("", None, "opaque")]
