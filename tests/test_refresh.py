"""refresh.py: the refresh call is bounded in total, not per socket read, so it ends before its lock expires."""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace

import pytest
import requests

from ki2api.accounts.refresh import post_within
from ki2api.accounts.token_manager import LOCK_SLACK, TokenManager
from ki2api.errors import UpstreamUnavailable
from tests.helpers.credentials import REFRESH, write_token_file

ANSWER = json.dumps({"accessToken": "aoaAAAAAtrickled-access", "expiresIn": 3600, "refreshToken": "aorAAAAAnext"})
TRICKLE_EVERY = 0.05  # far below any read timeout used here: no single socket read ever waits long


class TricklingEndpoint:
    """A token endpoint on loopback that reads the request, then sends its (valid) answer one byte at a time."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/refreshToken"
        self.answer = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(ANSWER)}\r\n"
                       f"Connection: close\r\n\r\n{ANSWER}").encode()
        self.sent = 0
        self.finished = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            for byte in self.answer:
                if self.stop.wait(TRICKLE_EVERY):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client hung up
                self.sent += 1
            self.finished.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def trickling():
    endpoint = TricklingEndpoint()
    yield endpoint
    endpoint.close()


def test_a_trickled_answer_is_cut_at_the_deadline(trickling):
    assert len(trickling.answer) * TRICKLE_EVERY > 5  # in full it would take seconds, not the 0.5 s allowed
    with pytest.raises(requests.exceptions.Timeout):
        post_within(requests.Session(), trickling.url, {"refreshToken": REFRESH}, {}, 0.5)
    assert 0 < trickling.sent < len(trickling.answer) and not trickling.finished.is_set()  # cut mid-answer


def test_an_answer_in_time_is_returned_whole(fake_upstream):
    response = post_within(requests.Session(), fake_upstream.refresh_url, {"refreshToken": REFRESH}, {}, 5)
    assert response.status_code == 200 and response.json()["refreshToken"] == "aorAAAAAfake-refresh-1"


def test_no_time_left_is_a_timeout_without_a_call(fake_upstream):
    with pytest.raises(requests.exceptions.Timeout):
        post_within(requests.Session(), fake_upstream.refresh_url, {"refreshToken": REFRESH}, {}, 0)
    assert fake_upstream.stats()["refresh_calls"] == 0


def test_a_trickling_refresh_endpoint_is_503_before_the_refresh_lock_expires(settings, token_file, trickling):
    """The refresh lock (Redis: TOKEN_REFRESH_TIMEOUT + LOCK_SLACK) must outlive the refresh, or another
    replica takes the lock and spends the same rotating refresh token."""
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    manager = TokenManager(replace(settings, refresh_url=trickling.url, refresh_timeout=0.5), requests.Session())
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="did not answer within 0.5 s"):
        manager.current()
    assert time.monotonic() - started < 0.5 + LOCK_SLACK  # the lock's expiry, with Redis
    assert not trickling.finished.is_set() and trickling.sent > 0
    assert token_file.read_bytes() == original
