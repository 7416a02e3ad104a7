"""AWS event-stream frames, byte for byte, as Kiro sends them: for the fake Kiro, the bench streamer and tests."""
from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from typing import Any


def string_header(name: str, value: str) -> bytes:
    """One encoded header of value type 7 (string), the only type Kiro sends."""
    raw_name = name.encode()
    raw_value = value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Return one frame with string headers (type 7) and valid prelude and message CRCs."""
    return encode_raw(b"".join(string_header(k, v) for k, v in headers.items()), payload)


def encode_raw(raw_headers: bytes, payload: bytes) -> bytes:
    """Return one frame around an already encoded header block (whatever its bytes), with valid CRCs."""
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """Return an `event` frame as Kiro sends it: event type, JSON content type, message type."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload, ensure_ascii=False).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    """Return an `exception` frame carrying `{"message": ...}`."""
    headers = {":exception-type": exception_type, ":content-type": "application/json",
               ":message-type": "exception"}
    return encode_frame(headers, json.dumps({"message": message}).encode())



def json_frame(event_type: str, payload: dict[str, Any], content_type: str = "application/json") -> bytes:
    """An event frame with compact JSON, header order as Kiro sends it."""
    headers = {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    return encode_frame(headers, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())


def initial_response_frame() -> bytes:
    """The first frame of a real answer: `initial-response` with an empty conversation id."""
    return json_frame("initial-response", {"conversationId": ""}, "application/x-amz-json-1.0")


def text_frame(text: str, model_id: str) -> bytes:
    """One assistantResponseEvent frame."""
    return json_frame("assistantResponseEvent", {"content": text, "modelId": model_id})


@lru_cache(maxsize=64)
def bulk_text_frames_cached(count: int, size: int, model_id: str) -> tuple[bytes, ...]:
    """`count` text frames of about `size` bytes each, built once per shape (benchmarks reuse them)."""
    overhead = len(text_frame("", model_id))
    words = ("lorem ipsum dolor sit amet consectetur " * (size // 40 + 2))[:max(1, size - overhead)]
    return tuple(text_frame(words, model_id) for _ in range(count))


def bulk_text_frames(count: int, size: int, model_id: str) -> list[bytes]:
    """A fresh list of the cached bulk frames."""
    return list(bulk_text_frames_cached(count, size, model_id))


def split_frames(data: bytes) -> list[bytes]:
    """Cut a well-formed byte stream at the frame lengths its preludes give."""
    frames, pos = [], 0
    while pos + 4 <= len(data):
        (total,) = struct.unpack_from(">I", data, pos)
        if total < 16:
            raise ValueError(f"frame at {pos} claims length {total}")
        frames.append(data[pos:pos + total])
        pos += total
    if pos != len(data):
        raise ValueError("trailing bytes after the last frame")
    return frames


def flip_crc(frame: bytes) -> bytes:
    """The same frame with its message CRC inverted."""
    (crc,) = struct.unpack(">I", frame[-4:])
    return frame[:-4] + struct.pack(">I", crc ^ 0xFFFFFFFF)
