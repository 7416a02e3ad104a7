"""Client faults against gunicorn + gevent workers + the fake Kiro: disconnects, slow senders, huge bodies.

Disconnects mid-stream, during an upstream silence, during a token refresh, and before Kiro has sent its
answer's headers (a stand-in Kiro that never answers: the fake Kiro always sends its headers at once).

Greenlets and sockets are counted inside the worker through /debug/runtime, an endpoint that exists only
when KI2API_DEBUG_ENDPOINTS=1 (set here, never in a deployment).
"""
from __future__ import annotations

import json
import socket
import threading
import time

import openai
import pytest
import requests

from tests.helpers.credentials import KEY, REFRESH, write_token_file
from tests.helpers.faults import (APIS, DEFAULT_ANSWER, OPENAI, Api, assert_worker_fine, call,
                                             wait_for)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {KEY}"}
LONG_ANSWER = {"texts": [f"word{i} " for i in range(400)], "pace": 0.02}  # about 8 s if nobody stops it


def runtime(gw) -> dict:
    return requests.get(f"{gw.url}/debug/runtime", headers=AUTH, timeout=10).json()


@pytest.fixture
def gw(start_gateway):
    return start_gateway(KI2API_DEBUG_ENDPOINTS="1")


def warm_baseline(gw, fake) -> dict:
    """Counts after a few ordinary requests (pools and lazy imports settled)."""
    for stream in (False, True, False):
        assert OPENAI.text(call(gw, OPENAI.path, OPENAI.body, stream=stream)) == DEFAULT_ANSWER
    wait_for(lambda: fake.stats()["open_streams"] == 0)
    return runtime(gw)


def raw_request(gw, body: bytes, extra_headers: str = "", path: str = "/v1/chat/completions") -> socket.socket:
    """Open a socket to ki2api and send one POST with the test key; the caller reads and closes."""
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra_headers}\r\n")
    sock.sendall(head.encode())
    if body:
        sock.sendall(body)
    return sock


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of a Content-Length response."""
    data = read_until(sock, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, json.loads(rest[:length])


def stream_body(api: Api = OPENAI) -> bytes:
    return json.dumps({**api.body, "stream": True}).encode()


# --- disconnects ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
def test_disconnect_mid_stream_closes_the_upstream_within_a_second(gw, fake_upstream, api):
    baseline = warm_baseline(gw, fake_upstream)
    fake_upstream.script(LONG_ANSWER)
    sock = raw_request(gw, stream_body(api), path=api.path)
    assert b"word3 " in read_until(sock, b"word3 ")
    assert fake_upstream.stats()["open_streams"] == 1
    sock.close()
    closed_at = time.monotonic()
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, timeout=10, interval=0.01,
             what="the upstream stream to be closed")
    assert time.monotonic() - closed_at < 1.0
    assert fake_upstream.stats()["frames_sent"] < 100  # the 400-frame answer was not sent to the end
    wait_for(lambda: runtime(gw)["greenlets"] <= baseline["greenlets"], what="greenlets back to baseline")
    wait_for(lambda: runtime(gw)["sockets"] <= baseline["sockets"], what="sockets back to baseline")
    assert_worker_fine(gw, fake_upstream)


@pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
def test_disconnect_while_the_upstream_is_silent_closes_it_within_a_second(gw, fake_upstream, api):
    """The model is 'thinking' (no bytes for a long time) when the client gives up."""
    baseline = warm_baseline(gw, fake_upstream)
    fake_upstream.script({"texts": ["first ", "second"], "hold_after": 2})
    sock = raw_request(gw, stream_body(api), path=api.path)
    assert b"first " in read_until(sock, b"first ")
    sock.close()
    closed_at = time.monotonic()
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, timeout=10, interval=0.01,
             what="ki2api to close the silent upstream connection")
    assert time.monotonic() - closed_at < 1.0
    assert fake_upstream.release() == 0  # the hold had ended: ki2api hung up on it
    wait_for(lambda: runtime(gw)["greenlets"] <= baseline["greenlets"], what="greenlets back to baseline")
    wait_for(lambda: runtime(gw)["sockets"] <= baseline["sockets"], what="sockets back to baseline")
    assert_worker_fine(gw, fake_upstream)


class SilentKiro:
    """A Kiro that reads chat requests and never answers, not even its headers; notes when each connection ends."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests = 0
        self.closed_at: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # stop() closed the listener
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while piece := conn.recv(65536):
                if b"\r\n\r\n" not in data and b"\r\n\r\n" in data + piece:
                    self.requests += 1
                data += piece
        self.closed_at.append(time.monotonic())

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def silent_kiro():
    kiro = SilentKiro()
    yield kiro
    kiro.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
def test_disconnect_before_kiro_answers_ends_the_upstream_call_at_once(start_gateway, silent_kiro, api, stream):
    """Kiro has not even sent its headers when the client gives up: the call must not wait for them (60 s here)."""
    gw = start_gateway(KIRO_API_BASE=silent_kiro.url, UPSTREAM_READ_TIMEOUT="60")
    sock = raw_request(gw, json.dumps({**api.body, "stream": stream}).encode(), path=api.path)
    wait_for(lambda: silent_kiro.requests == 1, what="the chat call to reach Kiro")
    sock.close()
    closed_at = time.monotonic()
    wait_for(lambda: silent_kiro.closed_at, timeout=10, interval=0.01,
             what="ki2api to close the call Kiro had not answered yet")
    assert silent_kiro.closed_at[0] - closed_at < 1.0
    line = wait_for(lambda: next((line for line in gw.log_text().splitlines() if f"route={api.path} " in line),
                                 None), what="the request's log line")
    assert "status=499" in line and "outcome=client_closed" in line, line
    # The client's doing, not the account's: no upstream error counted, the account is not rested.
    metrics = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=10).text
    assert "ki2api_upstream_errors_total{" not in metrics
    [account] = requests.get(f"{gw.url}/health", timeout=10).json()["accounts"]
    assert account["state"] == "healthy"
    assert "Traceback" not in gw.log_text()


def test_a_client_leaving_during_a_token_refresh_does_not_cut_the_refresh_short(start_gateway, fake_upstream,
                                                                               token_file):
    """Kiro has rotated the refresh token but not yet answered when the client leaves: the refresh must still
    finish and write the new tokens back (a cut refresh would lose the login); only the chat call is ended."""
    write_token_file(token_file, expires_in=-60)  # expired: the request refreshes first
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH, refresh_hold=True)
    gw = start_gateway()
    sock = raw_request(gw, json.dumps(OPENAI.body).encode())
    wait_for(lambda: fake_upstream.stats()["held_refreshes"] == 1, what="the refresh to be held by Kiro")
    sock.close()
    fake_upstream.release()  # Kiro answers the refresh now
    wait_for(lambda: json.loads(token_file.read_text())["refreshToken"] == fake_upstream.stats()["refresh_token"],
             what="the rotated tokens to be written back")
    line = wait_for(lambda: next((line for line in gw.log_text().splitlines() if "route=/v1/chat" in line), None),
                    what="the request's log line")
    assert "status=499" in line and "outcome=client_closed" in line, line
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert_worker_fine(gw, fake_upstream)


def test_fifty_disconnects_leave_no_greenlet_or_socket_behind(gw, fake_upstream):
    baseline = warm_baseline(gw, fake_upstream)
    fake_upstream.set_default(LONG_ANSWER)
    sockets = [raw_request(gw, stream_body()) for _ in range(50)]
    for sock in sockets:
        assert b"word1 " in read_until(sock, b"word1 ")
    during = runtime(gw)
    assert during["greenlets"] >= baseline["greenlets"] + 50
    for sock in sockets:
        sock.close()
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, timeout=10, what="every upstream stream closed")
    wait_for(lambda: runtime(gw)["greenlets"] <= baseline["greenlets"], what="greenlets back to baseline")
    wait_for(lambda: runtime(gw)["sockets"] <= baseline["sockets"], what="sockets back to baseline")
    fake_upstream.set_default({})
    assert_worker_fine(gw, fake_upstream)


def test_workers_run_the_tuned_garbage_collector(gw):
    """GC_THRESHOLDS reaches the worker (gunicorn_hooks.post_worker_init; why, in docs/performance.md), and the
    app built at start is frozen out of every collection."""
    gc_state = runtime(gw)["gc"]
    assert gc_state["thresholds"] == [10_000, 50, 100]
    assert gc_state["frozen"] > 10_000


def test_gc_thresholds_python_leaves_pythons_own_collector(start_gateway):
    """GC_THRESHOLDS=python: the collector as Python sets it up (the comparison of docs/performance.md)."""
    gc_state = runtime(start_gateway(KI2API_DEBUG_ENDPOINTS="1", GC_THRESHOLDS="python"))["gc"]
    assert gc_state == {"thresholds": [700, 10, 10], "frozen": 0}


def test_debug_endpoint_is_absent_unless_asked_for(start_gateway):
    gw = start_gateway()
    assert requests.get(f"{gw.url}/debug/runtime", headers=AUTH, timeout=10).status_code == 404


# --- slow senders -----------------------------------------------------------------------------------------------

def test_slow_sender_is_answered_and_does_not_hold_up_others(gw, fake_upstream):
    body = json.dumps(OPENAI.body).encode()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    for i in range(0, len(head), 7):  # headers trickle in
        sock.sendall(head[i:i + 7])
        time.sleep(0.02)
    sock.sendall(body[:len(body) // 2])
    # Half the body is in; meanwhile other clients are served as usual.
    for _ in range(3):
        assert OPENAI.text(call(gw, OPENAI.path, OPENAI.body)) == DEFAULT_ANSWER
    for i in range(len(body) // 2, len(body), 5):
        sock.sendall(body[i:i + 5])
        time.sleep(0.02)
    status, answer = read_response(sock)
    sock.close()
    assert status == 200 and answer["choices"][0]["message"]["content"] == DEFAULT_ANSWER


def test_sender_that_stops_mid_body_gets_408(start_gateway, fake_upstream):
    gw = start_gateway(BODY_READ_TIMEOUT="1")
    body = json.dumps(OPENAI.body).encode()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                 + body[:10])
    status, answer = read_response(sock)
    sock.close()
    assert status == 408
    assert answer["error"]["code"] == "request_timeout" and "BODY_READ_TIMEOUT" in answer["error"]["message"]
    assert fake_upstream.stats()["chat_requests"] == 0
    assert_worker_fine(gw, fake_upstream)


# --- huge bodies ------------------------------------------------------------------------------------------------

def test_huge_body_is_413_with_content_length(start_gateway, fake_upstream):
    gw = start_gateway(MAX_BODY_BYTES="1048576")
    huge = json.dumps({**OPENAI.body, "messages": [{"role": "user", "content": "x" * (30 << 20)}]})
    response = requests.post(f"{gw.url}/v1/chat/completions", data=huge, timeout=60,
                             headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "MAX_BODY_BYTES" in error["message"]
    assert fake_upstream.stats()["chat_requests"] == 0
    assert_worker_fine(gw, fake_upstream)


def test_huge_chunked_body_is_413(start_gateway, fake_upstream):
    gw = start_gateway(MAX_BODY_BYTES="1048576")

    def pieces():
        yield b'{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "'
        for _ in range(64):
            yield b"x" * (64 << 10)
        yield b'"}]}'

    response = requests.post(f"{gw.url}/v1/chat/completions", data=pieces(), timeout=60,
                             headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["error"]["message"]
    assert fake_upstream.stats()["chat_requests"] == 0


def test_huge_message_through_the_openai_sdk_is_a_413_error(start_gateway):
    gw = start_gateway(MAX_BODY_BYTES="1048576")
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="claude-sonnet-4-5",
                                       messages=[{"role": "user", "content": "y" * (2 << 20)}])
    assert info.value.status_code == 413
