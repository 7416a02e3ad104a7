"""Property tests: the event-stream decoder and the event parser on arbitrary bytes and split points.

Whatever the network delivers, the decoder raises nothing but EventStreamError, and the event layer
nothing but EventStreamError or UpstreamException (an error the upstream reported on purpose).
Valid frames decode to the same frames wherever the stream is cut.
"""
from __future__ import annotations

import json
import struct
import zlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ki2api.upstream.eventstream import EventStreamDecoder, EventStreamError, parse_headers
from ki2api.upstream.events import UpstreamException, iter_events, parse_frame
from tests.fakes.kiro.frames import encode_frame
from tests.helpers.fixtures import capture_stream

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAPTURE = capture_stream("14")


def frame_with_raw_headers(raw_headers: bytes, payload: bytes) -> bytes:
    """A frame whose CRCs are right but whose header block is whatever we give it."""
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def feed_in_pieces(data: bytes, cuts: list[int]) -> list:
    decoder = EventStreamDecoder()
    frames = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in zip(points, points[1:]):
        frames += decoder.feed(data[start:end])
    decoder.finish()
    return frames


def events_in_pieces(data: bytes, cuts: list[int]) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return list(iter_events(data[a:b] for a, b in zip(points, points[1:])))


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)
@PROPERTY
@given(data=st.binary(max_size=400), cuts=cuts)
def test_decoder_raises_only_its_own_error_on_arbitrary_bytes(data, cuts):
    try:
        feed_in_pieces(data, cuts)
    except EventStreamError:
        pass


@PROPERTY
@given(raw_headers=st.binary(max_size=80), payload=st.binary(max_size=80), cuts=cuts)
@example(raw_headers=b"\x01u\x09" + b"\x00" * 4, payload=b"", cuts=[])  # a uuid header cut short
@example(raw_headers=b"\x01t\x08" + struct.pack(">q", 2 ** 62), payload=b"", cuts=[])  # a timestamp past year 9999
@example(raw_headers=b"\x01t\x08" + struct.pack(">q", -2 ** 62), payload=b"", cuts=[])
def test_valid_crcs_around_garbage_headers_still_raise_only_its_own_error(raw_headers, payload, cuts):
    """Past both CRC checks, the header parser meets the garbage: still only EventStreamError."""
    try:
        feed_in_pieces(frame_with_raw_headers(raw_headers, payload), cuts)
    except EventStreamError:
        pass


@PROPERTY
@given(block=st.binary(max_size=120))
def test_header_parser_raises_only_its_own_error(block):
    try:
        headers = parse_headers(block)
    except EventStreamError:
        return
    assert isinstance(headers, dict)


@PROPERTY
@given(data=st.binary(max_size=300), cuts=cuts)
def test_event_layer_raises_only_decoder_or_upstream_errors(data, cuts):
    try:
        events_in_pieces(data, cuts)
    except (EventStreamError, UpstreamException):
        pass


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
    if nest:
        body = {event_type: body}
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": message_type,
               ":exception-type": "SomeException"}
    frame = feed_in_pieces(encode_frame(headers, json.dumps(body).encode()), [])[0]
    try:
        parse_frame(frame)
    except (EventStreamError, UpstreamException):
        pass


def test_deeply_nested_json_payload_is_an_event_stream_error_not_a_recursion_error():
    payload = b"[" * 200_000 + b"]" * 200_000
    frame = feed_in_pieces(encode_frame({":event-type": "assistantResponseEvent", ":message-type": "event"},
                                        payload), [])[0]
    try:
        parse_frame(frame)
    except EventStreamError:
        pass


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
