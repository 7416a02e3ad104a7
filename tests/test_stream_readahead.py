"""A stream reads Kiro no further ahead than its client takes: a whole long answer sent as one HTTP chunk is read in
pieces of at most READ_SIZE, not into memory at once, and what was held is given back when the stream ends
(issue 19 item 10; the worker's RSS under that load is in docs/performance.md)."""
from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from werkzeug.test import EnvironBuilder

from ki2api.upstream.reading import READ_SIZE, pieces
from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

FRAMES, FRAME_BYTES = 12_000, 1_000  # 12 MB of answer
ONE_CHUNK = {"frames_count": FRAMES, "frame_bytes": FRAME_BYTES, "chunk_size": 64 * 1024 * 1024}
BODIES = {
    "/v1/chat/completions": {"model": "claude-sonnet-4-5", "stream": True,
                             "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "claude-sonnet-4-5", "stream": True, "input": "hi"},
    "/v1/messages": {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                     "messages": [{"role": "user", "content": "hi"}]},
}


def settled(sample, rounds=4):
    """`sample()` once it stopped changing by more than 5% over `rounds` polls (the reader ran as far as it can)."""
    history = []

    def still():
        history.append(sample())
        recent = history[-rounds:]
        return len(recent) == rounds and max(recent) <= min(recent) * 1.05 + 64 * 1024

    wait_for(still, what="the stream's memory to settle", timeout=20)
    return history[-1]


class OneChunk(BaseHTTPRequestHandler):
    """Answers any POST with a chunked body of one 1 MiB chunk."""

    def do_POST(self):
        # Read the request body first: a server that closes with unread bytes in its buffer sends a reset,
        # which can reach the client before the last of the answer.
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        data = b"x" * (1 << 20)
        self.wfile.write(b"%X\r\n%b\r\n0\r\n\r\n" % (len(data), data))

    def log_message(self, *args):
        pass


def test_pieces_of_one_huge_chunk_are_at_most_the_read_size():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneChunk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = requests.post(f"http://127.0.0.1:{server.server_port}/", data=b"{}", stream=True, timeout=10)
        sizes = [len(piece) for piece in pieces(response, keepalive=5.0)]
        response.close()
    finally:
        server.shutdown()
        server.server_close()
    assert sum(sizes) == 1 << 20
    assert max(sizes) == READ_SIZE and all(sizes)  # bounded, and no silence told: the bytes kept coming


@pytest.mark.parametrize("path", sorted(BODIES))
def test_a_client_that_stops_reading_holds_a_bounded_read_ahead(app, fake_upstream, path):
    warm = app.test_client().post(path, json={**BODIES[path], "stream": False},
                                  headers={"Authorization": f"Bearer {KEY}"})
    assert warm.status_code == 200  # first requests import and cache what every later one uses
    fake_upstream.script(ONE_CHUNK)
    environ = EnvironBuilder(path=path, method="POST", data=json.dumps(BODIES[path]),
                             headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
                             ).get_environ()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        body = iter(app(environ, lambda status, headers, exc_info=None: None))
        first = next(body)  # the client takes the first bytes, then nothing more
        held = settled(lambda: tracemalloc.get_traced_memory()[0]) - before
        peak = tracemalloc.get_traced_memory()[1] - before
        body.close()
        wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="the upstream connection to close")
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert first
    # Reading the 12 MB chunk whole held it, its frames and their events at once (tens of MB).
    assert peak < 2_000_000, f"peak {peak} bytes while the client did not read"
    assert held < 1_500_000, f"{held} bytes held while the client did not read"
    assert after < 200_000, f"{after} bytes still held after the stream ended"
