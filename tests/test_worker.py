"""ki2api's gunicorn worker (ki2api.web.worker): the header deadline, the per-address cap, the immediate stop.

gunicorn's real Worker is built with gunicorn's own Config; connections are gevent socket pairs. The full
behaviour under gunicorn is in tests/integration/test_hostile_connections.py and test_graceful_shutdown.py.
"""
from __future__ import annotations

import json
import os
import time

import gevent
import pytest
from gevent import socket as gsocket
from gevent.pool import Pool
from gunicorn.config import Config
from gunicorn.workers.ggevent import GeventWorker

from ki2api.web.worker import Worker
from tests.helpers.gunicorn_log import Log


def worker(workers: int = 1, keepalive: int = 75) -> Worker:
    cfg = Config()
    cfg.set("workers", workers)
    cfg.set("keepalive", keepalive)
    made = Worker(0, os.getppid(), [], None, 30, cfg, Log())
    made.pid = 4242
    return made


def read_request(w: Worker, server_side: gsocket.socket) -> tuple[bytes, float]:
    """What gunicorn does for each request: read its line and headers within `timeout_ctx()`."""
    started, got = time.monotonic(), b""
    with w.timeout_ctx():
        while b"\r\n\r\n" not in got:
            chunk = server_side.recv(4096)
            if not chunk:
                break
            got += chunk
    return got, time.monotonic() - started


@pytest.fixture
def connection():
    """A worker (KEEPALIVE 2 s, header deadline 0.2 s) with one connection, as its handle() registers it."""
    w = worker(keepalive=2)
    w.guard(0.2, 0)
    server_side, client_side = gsocket.socketpair()
    w.clients[gevent.getcurrent()] = server_side
    yield w, server_side, client_side
    server_side.close()
    client_side.close()


def test_a_first_request_has_the_header_deadline_from_the_start(connection):
    w, server_side, client_side = connection
    w.first_request.add(gevent.getcurrent())
    client_side.sendall(b"GET / HTTP/1.1\r\n")  # and no more
    got, elapsed = read_request(w, server_side)
    assert got == b"GET / HTTP/1.1\r\n" and 0.15 <= elapsed < 1.8  # the deadline, not KEEPALIVE


def test_a_later_request_may_wait_keepalive_then_has_the_header_deadline_from_its_first_byte(connection):
    w, server_side, client_side = connection

    def trickle() -> None:
        gevent.sleep(0.4)  # idle, longer than the header deadline
        client_side.sendall(b"G")

    gevent.spawn(trickle)
    got, elapsed = read_request(w, server_side)
    assert got == b"G" and 0.55 <= elapsed < 1.8  # 0.4 s idle + 0.2 s deadline, not KEEPALIVE's 2 s


def test_a_request_in_time_is_read_and_an_idle_connection_gets_keepalive(connection):
    w, server_side, client_side = connection
    client_side.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_request(w, server_side)[0].endswith(b"\r\n\r\n")
    got, elapsed = read_request(w, server_side)  # nothing more comes
    assert got == b"" and 1.9 <= elapsed < 5.0


def test_without_a_header_deadline_gunicorns_own_keepalive_timeout():
    w = worker(keepalive=75)
    w.clients[gevent.getcurrent()] = object()
    w.first_request.add(gevent.getcurrent())
    assert w.timeout_ctx().seconds == 75


def test_gunicorn_builds_its_own_stream_server_which_the_worker_remembers_and_closes_at_sigterm(monkeypatch):
    w = worker(workers=2)
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = w.server_class(listener, application=object(), spawn=Pool(10), log=w.log, handler_class=None,
                            environ={})  # the arguments GeventWorker.run passes
    assert isinstance(w, GeventWorker) and w.servers == [server]
    assert server.max_accept == 1 and server.handle.func == w.handle
    [named] = server.handle.args  # the listener's name for gunicorn, still there once the socket is closed
    assert named.getsockname() == listener.getsockname()
    server.start()
    spawned = []
    monkeypatch.setattr(gevent, "spawn", spawned.append)
    w.handle_exit(15, None)
    assert w.alive is False and spawned == [w.stop_accepting]
    w.stop_accepting()
    w.stop_accepting()  # gunicorn's loop closes them again a second later: harmless
    assert server.closed and w.log.lines[-1] == ("info", "worker 4242 stopped accepting connections")
    assert named.getsockname()[0] == "127.0.0.1"


def test_connections_are_counted_per_address_while_open(monkeypatch):
    w = worker()
    w.guard(5.0, 2)
    seen = []

    def served(self, listener, client, addr):
        seen.append((dict(self.open_by_address), gevent.getcurrent() in self.first_request))

    monkeypatch.setattr(GeventWorker, "handle", served)
    w.handle("listener", "client", ("10.0.0.1", 1))
    w.handle("listener", "client", "unix")  # a unix socket has no address: never capped
    assert seen == [({"10.0.0.1": 1}, True), ({}, True)] and w.open_by_address == {} and not w.first_request


def refused(w: Worker, address: str) -> bytes:
    server_side, client_side = gsocket.socketpair()
    client_side.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    w.handle("listener", server_side, (address, 1))
    answer = b""
    while chunk := client_side.recv(4096):
        answer += chunk
    client_side.close()
    return answer


def test_beyond_the_cap_a_connection_gets_a_json_429_and_one_log_line(monkeypatch):
    monkeypatch.setattr(GeventWorker, "handle", lambda *a: pytest.fail("a refused connection was served"))
    w = worker()
    w.guard(5.0, 2)
    w.open_by_address["10.0.0.1"] = 2
    answers = [refused(w, "10.0.0.1") for _ in range(3)]
    head, body = answers[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests") and b"Connection: close" in head
    error = json.loads(body)["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "too_many_connections"
    assert answers[1] == answers[2] == answers[0]
    assert w.log.lines == [("warning", "connections: refused 1 connection(s) from 10.0.0.1, which holds 2 open "
                                       "(MAX_CONNECTIONS_PER_ADDRESS)")]
    assert w.open_by_address == {"10.0.0.1": 2}  # refusals are not counted as open
