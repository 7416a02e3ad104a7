"""A lean fake Kiro for benchmarks: real HTTP/1.1 and real event-stream frames, stamped with their send time.

The tests' fake Kiro (tests/fakes/kiro/) is scriptable but does more per request than a benchmark can
afford at thousands of streams, and cannot say when it sent each frame. This one answers
`POST /generateAssistantResponse` like Kiro (chunked `application/vnd.amazon.eventstream`: initial-response,
text frames, contextUsageEvent, meteringEvent) and reads its answer's shape from the first line of the
current user message, a JSON object:

    {"n": frames, "b": bytes per frame, "pace": seconds between frames, "first": seconds before the first,
     "ts": true}

With "ts", each text frame starts with `@<CLOCK_MONOTONIC send time>@`, so a client on this machine can tell
how long each frame took to reach it, directly or through ki2api. Its frames come from the fake Kiro's encoder
(tests/fakes/kiro/frames.py). Run: `python -m bench.streamer --port N`.
"""
from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from functools import lru_cache  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

from tests.fakes.kiro import frames  # noqa: E402

DEFAULT = {"n": 4, "b": 40, "pace": 0.0, "first": 0.0, "ts": False}
STAMP = b"@%017.6f@"  # fixed width, so a stamped frame's length (and header) never changes
STAMP_WIDTH = len(STAMP % 0.0)
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n"
        b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nConnection: keep-alive\r\n\r\n")
_DENIED_BODY = b'{"message":"The bearer token included in the request is invalid."}'
DENIED = b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(_DENIED_BODY), _DENIED_BODY)


_NOT_FOUND_BODY = b'{"message":"no such route"}'
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(_NOT_FOUND_BODY), _NOT_FOUND_BODY)


def chunk(data: bytes) -> bytes:
    """One HTTP chunk."""
    return b"%X\r\n%b\r\n" % (len(data), data)


@lru_cache(maxsize=256)
def text_frame(size: int, model_id: str) -> bytes:
    """An assistantResponseEvent frame of about `size` bytes (ASCII text, unstamped)."""
    overhead = len(frames.text_frame("", model_id))
    text = ("lorem ipsum dolor sit amet consectetur " * (size // 38 + 2))[:max(STAMP_WIDTH + 1, size - overhead)]
    return frames.text_frame(text, model_id)


def stamped(size: int, model_id: str) -> bytes:
    """A text frame with the send time in place of its first characters (CRCs recomputed)."""
    raw = bytearray(text_frame(size, model_id))
    at = raw.index(b'"content":"') + 11
    raw[at:at + STAMP_WIDTH] = STAMP % time.monotonic()
    struct.pack_into(">I", raw, len(raw) - 4, zlib.crc32(memoryview(raw)[:-4]))
    return bytes(raw)


INITIAL = chunk(frames.initial_response_frame())
TAIL = (chunk(frames.json_frame("contextUsageEvent", {"contextUsagePercentage": 1.5}))
        + chunk(frames.json_frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01}))
        + b"0\r\n\r\n")


def spec_of(body: bytes) -> tuple[dict[str, Any], str]:
    """The answer's shape and model id from a Kiro request body (parsed whole, as Kiro would)."""
    message = json.loads(body)["conversationState"]["currentMessage"]["userInputMessage"]
    first_line = message["content"].split("\n", 1)[0]
    spec = dict(DEFAULT)
    if first_line.startswith("{"):
        spec.update(json.loads(first_line))
    return spec, message["modelId"]


def stream(sock: socket.socket, spec: dict[str, Any], model_id: str) -> None:
    """Send one answer, frame by frame at the spec's pace."""
    if spec["first"]:
        gevent.sleep(spec["first"])
    count, size, pace, stamp = int(spec["n"]), int(spec["b"]), float(spec["pace"]), bool(spec["ts"])
    if not pace and not stamp:  # a burst: one write, as a fast upstream's bytes would arrive
        sock.sendall(HEAD + INITIAL + chunk(text_frame(size, model_id)) * count + TAIL)
        return
    sock.sendall(HEAD + INITIAL)
    start = time.monotonic()
    for i in range(count):
        if pace:
            delay = start + i * pace - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        sock.sendall(chunk(stamped(size, model_id) if stamp else text_frame(size, model_id)))
    sock.sendall(TAIL)


class Reader:
    """Buffered reads of HTTP requests from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, bytearray()

    def request(self) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
        """(request line, lower-cased headers, body) or None at end of connection."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            data = self.sock.recv(262144)
            if not data:
                return None
            self.buffer += data
        head = bytes(self.buffer[:end]).split(b"\r\n")
        del self.buffer[:end + 4]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            data = self.sock.recv(max(262144, length - len(self.buffer)))
            if not data:
                return None
            self.buffer += data
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return head[0], headers, body


def handler(token: str):
    """The connection handler: keep-alive requests until the client closes."""
    expected = f"Bearer {token}".encode()

    def handle(sock: socket.socket, _address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each frame leaves when written, as from Kiro
        reader = Reader(sock)
        try:
            while (request := reader.request()) is not None:
                line, headers, body = request
                if line.startswith(b"GET /ping"):
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                elif not line.startswith(b"POST /generateAssistantResponse "):
                    sock.sendall(NOT_FOUND)
                elif headers.get(b"authorization") != expected:
                    sock.sendall(DENIED)
                else:
                    stream(sock, *spec_of(body))
        except OSError:
            pass
        except Exception as exc:  # a malformed request: say so once, drop the connection
            print(f"bench streamer: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sock.close()
    return handle


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description="lean fake Kiro for benchmarks")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True, help="the access token to accept")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    StreamServer(("127.0.0.1", args.port), handler(args.token), backlog=4096).serve_forever()


if __name__ == "__main__":
    main()
