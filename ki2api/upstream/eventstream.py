"""An incremental decoder for AWS event-stream frames (application/vnd.amazon.eventstream).

Frame layout, all integers big-endian:

    total_length u32 | headers_length u32 | prelude_crc u32   (CRC32 of the first 8 bytes)
    headers: repeated { name_len u8, name, value_type u8, value }
    payload | message_crc u32                                 (CRC32 of everything before it)

The decoder accepts whatever chunk sizes the network delivers and yields each
frame once its last byte has arrived. A bad CRC or an impossible length is an
error: the upstream connection is not trustworthy after that, so we stop.
"""
from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

PRELUDE_LENGTH = 12
MIN_FRAME = 16
MAX_FRAME = 16 * 1024 * 1024


class EventStreamError(ValueError):
    """The bytes are not a valid event stream (bad CRC, length or header)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: its headers and raw payload bytes."""

    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type", "event"))

    @property
    def event_type(self) -> str | None:
        return self.headers.get(":event-type")

    @property
    def exception_type(self) -> str | None:
        return self.headers.get(":exception-type") or self.headers.get(":error-code")


def _fixed(size: int, fmt: str):
    def read(data: bytes, at: int) -> tuple[Any, int]:
        return struct.unpack_from(fmt, data, at)[0], at + size
    return read


def _sized(data: bytes, at: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">H", data, at)
    end = at + 2 + length
    if end > len(data):
        raise EventStreamError("header value runs past the header block")
    return data[at + 2:end], end


def _string(data: bytes, at: int) -> tuple[str, int]:
    raw, end = _sized(data, at)
    return raw.decode("utf-8", errors="replace"), end


def _timestamp(data: bytes, at: int) -> tuple[datetime, int]:
    (millis,) = struct.unpack_from(">q", data, at)
    try:
        return datetime.fromtimestamp(millis / 1000, tz=timezone.utc), at + 8
    except (ValueError, OverflowError, OSError):  # beyond the years datetime can hold
        raise EventStreamError(f"timestamp header {millis} ms is out of range") from None


def _uuid(data: bytes, at: int) -> tuple[uuid.UUID, int]:
    raw = bytes(data[at:at + 16])
    if len(raw) != 16:
        raise EventStreamError("uuid header value runs past the header block")
    return uuid.UUID(bytes=raw), at + 16


_READERS = {
    0: lambda data, at: (True, at),
    1: lambda data, at: (False, at),
    2: _fixed(1, ">b"),
    3: _fixed(2, ">h"),
    4: _fixed(4, ">i"),
    5: _fixed(8, ">q"),
    6: _sized,
    7: _string,
    8: _timestamp,
    9: _uuid,
}


def parse_headers(block: bytes) -> dict[str, Any]:
    """Decode a header block into a name -> value mapping."""
    headers: dict[str, Any] = {}
    at = 0
    try:
        while at < len(block):
            name_length = block[at]
            name = block[at + 1:at + 1 + name_length].decode("utf-8", errors="replace")
            at += 1 + name_length
            reader = _READERS.get(block[at])
            if reader is None:
                raise EventStreamError(f"unknown header value type {block[at]} for {name!r}")
            headers[name], at = reader(block, at + 1)
    except (IndexError, struct.error):
        raise EventStreamError("header block is truncated") from None
    if at != len(block):
        raise EventStreamError("header block is longer than declared")
    return headers


_HEADER_CACHE: dict[bytes, dict[str, Any]] = {}
_CACHE_ENTRIES = 256
_CACHE_BLOCK = 512  # only short header blocks are cached, so a hostile upstream cannot grow the cache


def _headers(block: bytes) -> dict[str, Any]:
    """parse_headers, remembered per block: the frames of one stream repeat a handful of header blocks."""
    headers = _HEADER_CACHE.get(block)
    if headers is None:
        headers = parse_headers(block)
        if len(block) <= _CACHE_BLOCK and len(_HEADER_CACHE) < _CACHE_ENTRIES:
            _HEADER_CACHE[block] = headers
    return dict(headers)


class EventStreamDecoder:
    """Feed bytes in, get complete frames out; call finish() at end of stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._error: EventStreamError | None = None  # found after good frames of the same chunk: raised next
        self.started = False  # a valid prelude was read: the bytes are an event stream, broken or not

    def feed(self, chunk: bytes) -> list[Frame]:
        """Add bytes and return every frame they complete, in order. A broken frame raises; the good frames
        before it in the same chunk are returned first, and the error comes with the next feed() or finish()."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += chunk
        frames = []
        at, size = 0, len(buffer)
        try:
            while size - at >= PRELUDE_LENGTH:
                total, headers_length = self._prelude(at)
                self.started = True
                if size - at < total:
                    break
                frames.append(self._frame(at, total, headers_length))
                at += total
        except EventStreamError as exc:
            if not frames:
                raise
            self._error = exc
        if at:
            del buffer[:at]  # once per feed, not once per frame: a burst of frames is not copied over and over
        return frames

    def finish(self) -> None:
        """Raise if the stream ended in the middle of a frame, or after a broken one."""
        if self._error is not None:
            raise self._error
        if self._buffer:
            raise EventStreamError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")

    def _prelude(self, at: int) -> tuple[int, int]:
        total, headers_length, crc = struct.unpack_from(">III", self._buffer, at)
        if zlib.crc32(self._buffer[at:at + 8]) != crc:
            raise EventStreamError("prelude CRC mismatch")
        if not MIN_FRAME <= total <= MAX_FRAME:
            raise EventStreamError(f"frame length {total} is out of bounds")
        if headers_length > total - MIN_FRAME:
            raise EventStreamError(f"headers length {headers_length} does not fit a {total}-byte frame")
        return total, headers_length

    def _frame(self, at: int, total: int, headers_length: int) -> Frame:
        data = self._buffer[at:at + total]
        (crc,) = struct.unpack_from(">I", data, total - 4)
        if zlib.crc32(memoryview(data)[:total - 4]) != crc:
            raise EventStreamError("message CRC mismatch")
        headers_end = PRELUDE_LENGTH + headers_length
        return Frame(_headers(bytes(data[PRELUDE_LENGTH:headers_end])), bytes(data[headers_end:total - 4]))
