"""HTTP/1.1 for the fake Kiro: a request reader (Content-Length or chunked) and a connection writer with faults."""
from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Callable, NoReturn

import gevent

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 64 * 1024 * 1024
MAX_STALL = 300.0  # a stalled stream gives up after this long, so a forgotten test cannot hang the server
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class HttpError(Exception):
    """A request the server cannot read; answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One parsed request; header names are lower-cased."""

    method: str
    path: str
    query: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this one."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class Reader:
    """Buffered reads from a socket: lines and exact byte counts."""

    def __init__(self, sock: socket.socket, clock_skew: Callable[[], float] = lambda: 0.0) -> None:
        self.sock = sock
        self.clock_skew = clock_skew  # seconds added to the Date header's time (a server clock that is off)
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def readline(self) -> bytes:
        """One line with its CRLF; b"" at a clean end of stream."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
                return line
            if len(self.buffer) > MAX_LINE:
                raise HttpError(431, "line too long")
            if not self._fill():
                line, self.buffer = self.buffer, b""
                return line

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, or HttpError if the client stops early."""
        while len(self.buffer) < size:
            if not self._fill():
                raise HttpError(400, "body shorter than announced")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def read_request(reader: Reader) -> Request | None:
    """The next request on the connection, or None when the client closed it between requests."""
    line = reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between keep-alive requests (RFC 9112 2.2)
        line = reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"bad request line {line[:80]!r}")
    method, target, version = parts
    path, _, query = target.partition("?")
    headers = _read_headers(reader)
    return Request(method, path, query, version, headers, _read_body(reader, headers))


def _read_headers(reader: Reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        line = reader.readline()
        if not line:
            raise HttpError(400, "connection closed inside the headers")
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise HttpError(400, f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    raise HttpError(431, "too many headers")


def _read_body(reader: Reader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(reader)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    if not 0 <= length <= MAX_BODY:
        raise HttpError(413, "body too large")
    return reader.read(length)


def _read_chunked(reader: Reader) -> bytes:
    parts, total = [], 0
    while True:
        size_line = reader.readline().split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise HttpError(400, "bad chunk size") from None
        total += size
        if total > MAX_BODY:
            raise HttpError(413, "body too large")
        if size == 0:
            while reader.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        parts.append(reader.read(size))
        reader.read(2)


class Closed(Exception):
    """The connection must be closed now (fault injected, or the client went away)."""


class Connection:
    """One client socket: writes status lines, plain bodies and chunked streams, and injects faults."""

    def __init__(self, sock: socket.socket, clock_skew: Callable[[], float] = lambda: 0.0) -> None:
        self.sock = sock
        self.clock_skew = clock_skew  # seconds added to the Date header's time (a server clock that is off)
        # Head, chunks and trailer go out in separate writes: without this, Nagle + delayed ACK hold each ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_head(self, status: int, headers: dict[str, str], keep_alive: bool) -> None:
        """Write the status line and headers."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Date: {formatdate(time.time() + self.clock_skew(), usegmt=True)}",
                 f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_plain(self, status: int, body: bytes, keep_alive: bool, headers: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
        """Write a whole response with a Content-Length body."""
        head = {"Content-Type": content_type, "Content-Length": str(len(body)),
                "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}
        self.send_head(status, head, keep_alive)
        self.sendall(body)

    def send_json(self, status: int, obj: Any, keep_alive: bool) -> None:
        """Write a JSON response."""
        self.send_plain(status, json.dumps(obj).encode(), keep_alive)

    def sendall(self, data: bytes) -> None:
        """Write bytes; a client that went away becomes Closed."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Closed(f"client went away: {exc}") from exc

    def reset(self) -> NoReturn:
        """Abort the connection with an RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raise Closed("reset injected")

    def wait_for_client_to_leave(self) -> NoReturn:
        """Send nothing and return once the client closes (or MAX_HOLD passes)."""
        with gevent.Timeout(MAX_STALL, False):
            try:
                while self.sock.recv(4096):
                    pass
            except OSError:
                pass
        raise Closed("stall ended")
