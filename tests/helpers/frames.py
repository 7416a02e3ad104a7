"""Builds AWS event-stream frames, byte for byte, for tests and the fake upstream."""
from __future__ import annotations

import json
import struct
import zlib
from typing import Any


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode()
    raw_value = value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Return one frame with string headers (type 7) and valid prelude and message CRCs."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
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


def text_frames(pieces: list[str], model_id: str = "claude-sonnet-4.5") -> list[bytes]:
    """Return one assistantResponseEvent frame per text piece."""
    return [event_frame("assistantResponseEvent", {"content": p, "modelId": model_id}) for p in pieces]
