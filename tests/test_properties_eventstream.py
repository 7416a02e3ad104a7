"""Property tests: the event-stream decoder and the event parser on arbitrary bytes and split points.

Frames made by the fake Kiro's encoder decode to themselves wherever the stream is cut, also when arbitrary
bytes follow them; whatever the network delivers, the decoder raises nothing but EventStreamError, and the
event layer nothing but EventStreamError or UpstreamException (an error the upstream reported on purpose).
"""
from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ki2api.upstream.eventstream import EventStreamDecoder, EventStreamError, parse_headers
from ki2api.upstream.events import TextDelta, UpstreamException, iter_events, parse_frame
from tests.fakes.kiro.frames import encode_frame, encode_raw, string_header, text_frame
from tests.helpers.fixtures import capture_stream

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAPTURE = capture_stream("14")


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[start:end] for start, end in zip(points, points[1:])]


def feed_in_pieces(data: bytes, cuts: list[int]) -> list:
    decoder = EventStreamDecoder()
    frames = []
    for piece in pieces(data, cuts):
        frames += decoder.feed(piece)
    decoder.finish()
    return frames


def events_in_pieces(data: bytes, cuts: list[int]) -> list:
    return list(iter_events(pieces(data, cuts)))


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)
header_names = st.text(min_size=1, max_size=20)  # at most 80 bytes of UTF-8: fits the one-byte name length
header_values = st.text(max_size=40)
frame_lists = st.lists(st.tuples(st.dictionaries(header_names, header_values, max_size=4), st.binary(max_size=200)),
                       max_size=5)


@PROPERTY
@given(frames=frame_lists, cuts=cuts)
def test_encoded_frames_decode_to_themselves_wherever_the_stream_is_cut(frames, cuts):
    data = b"".join(encode_frame(headers, payload) for headers, payload in frames)
    assert [(f.headers, f.payload) for f in feed_in_pieces(data, cuts)] == frames


@PROPERTY
@given(frames=frame_lists, garbage=st.binary(max_size=400), cuts=cuts)
def test_frames_before_arbitrary_bytes_come_out_intact_and_the_rest_raises_only_its_own_error(frames, garbage, cuts):
    decoder, decoded = EventStreamDecoder(), []
    try:
        for piece in pieces(b"".join(encode_frame(h, p) for h, p in frames) + garbage, cuts):
            decoded += decoder.feed(piece)
        decoder.finish()
    except EventStreamError:
        pass
    assert [(f.headers, f.payload) for f in decoded[:len(frames)]] == frames


@PROPERTY
@given(raw_headers=st.binary(max_size=80), payload=st.binary(max_size=80), cuts=cuts)
@example(raw_headers=b"\x01u\x09" + b"\x00" * 4, payload=b"", cuts=[])  # a uuid header cut short
@example(raw_headers=b"\x01t\x08" + struct.pack(">q", 2 ** 62), payload=b"", cuts=[])  # a timestamp past year 9999
@example(raw_headers=b"\x01t\x08" + struct.pack(">q", -2 ** 62), payload=b"", cuts=[])
def test_valid_crcs_around_garbage_headers_still_raise_only_its_own_error(raw_headers, payload, cuts):
    """Past both CRC checks, the header parser meets the garbage: still only EventStreamError, and a frame it
    accepts carries the payload untouched and the headers the block spells."""
    try:
        frames = feed_in_pieces(encode_raw(raw_headers, payload), cuts)
    except EventStreamError:
        return
    assert [(f.headers, f.payload) for f in frames] == [(parse_headers(raw_headers), payload)]


@PROPERTY
@given(block=st.binary(max_size=120), name=header_names, value=header_values)
def test_header_parser_raises_only_its_own_error_and_reads_a_block_to_its_end(block, name, value):
    try:
        headers = parse_headers(block)
    except EventStreamError:
        return
    assert isinstance(headers, dict)
    assert parse_headers(block + string_header(name, value)) == {**headers, name: value}


@PROPERTY
@given(texts=st.lists(st.text(min_size=1, max_size=20), max_size=4), garbage=st.binary(max_size=300), cuts=cuts)
def test_event_layer_passes_on_the_text_before_arbitrary_bytes_then_raises_only_known_errors(texts, garbage, cuts):
    data = b"".join(text_frame(t, "claude-sonnet-4.5") for t in texts) + garbage
    said = []
    try:
        for event in iter_events(pieces(data, cuts)):
            said.append(event.text if isinstance(event, TextDelta) else "")
    except (EventStreamError, UpstreamException):
        pass
    assert "".join(said).startswith("".join(texts))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10 ** 400, max_value=10 ** 400) | st.floats()
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
event_types = st.sampled_from(["assistantResponseEvent", "toolUseEvent", "reasoningContentEvent",
                               "contextUsageEvent", "meteringEvent", "metadataEvent", "invalidStateEvent",
                               "initial-response", "mysteryEvent", "messageMetadataEvent"])
field_names = st.sampled_from(["content", "toolUseId", "name", "input", "stop", "text", "signature",
                               "redactedContent", "contextUsagePercentage", "usage", "unit", "tokenUsage",
                               "reason", "message", "uncachedInputTokens", "outputTokens"])


@PROPERTY
@given(event_type=event_types, message_type=st.sampled_from(["event", "exception", "error", "other"]),
       body=st.one_of(json_values, st.dictionaries(field_names, json_values, max_size=5)),
       nest=st.booleans())
@example(event_type="contextUsageEvent", message_type="event", body={"contextUsagePercentage": 10 ** 400},
         nest=False)
@example(event_type="meteringEvent", message_type="event", body={"usage": -10 ** 400}, nest=False)
@example(event_type="assistantResponseEvent", message_type="event", body=[[[[]]]] * 1, nest=False)
def test_any_json_payload_in_a_well_formed_frame_raises_only_known_errors(event_type, message_type, body, nest):
    """Whatever the payload, an exception or error frame is the upstream's error of its type; any other frame is
    an event, nothing, or one of the two known errors."""
    if nest:
        body = {event_type: body}
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": message_type,
               ":exception-type": "SomeException"}
    frame = feed_in_pieces(encode_frame(headers, json.dumps(body).encode()), [])[0]
    if message_type in ("exception", "error"):
        with pytest.raises(UpstreamException) as info:
            parse_frame(frame)
        assert info.value.kind == "SomeException"
        return
    try:
        parse_frame(frame)
    except (EventStreamError, UpstreamException):
        pass


def test_deeply_nested_json_payload_is_an_event_stream_error_not_a_recursion_error():
    payload = b"[" * 200_000 + b"]" * 200_000
    frame = feed_in_pieces(encode_frame({":event-type": "assistantResponseEvent", ":message-type": "event"},
                                        payload), [])[0]
    with pytest.raises(EventStreamError):
        parse_frame(frame)


@PROPERTY
@given(cuts=cuts)
def test_a_real_capture_decodes_to_the_same_events_wherever_it_is_cut(cuts):
    assert events_in_pieces(CAPTURE, cuts) == events_in_pieces(CAPTURE, [])


@PROPERTY
@given(at=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7), cuts=cuts)
def test_any_flipped_bit_in_a_real_capture_is_caught_or_harmless(at, bit, cuts):
    """A flipped bit lands in a CRC-protected frame: the decoder must refuse it, never pass it on as text."""
    data = bytearray(CAPTURE)
    data[at % len(data)] ^= 1 << bit
    try:
        events_in_pieces(bytes(data), cuts)
    except (EventStreamError, UpstreamException):
        return
    raise AssertionError("a corrupted capture decoded without an error")
