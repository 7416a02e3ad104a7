"""ki2api's gunicorn worker (ki2api.web.worker): the header deadline, the per-address cap, the immediate stop.

gunicorn's real Worker is built with gunicorn's own Config; connections are gevent socket pairs. The full
behaviour under gunicorn is in tests/integration/test_hostile_connections.py and test_graceful_shutdown.py.
"""
from __future__ import annotations

import json
import os

import gevent
import pytest
from gevent import socket as gsocket
from gevent.pool import Pool
from gunicorn.config import Config
from gunicorn.workers.ggevent import GeventWorker

from ki2api.web.worker import Worker


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(("info", message % args))

    def warning(self, message: str, *args: object) -> None:
        self.lines.append(("warning", message % args))


def worker(workers: int = 1, keepalive: int = 75) -> Worker:
    cfg = Config()
    cfg.set("workers", workers)
    cfg.set("keepalive", keepalive)
    made = Worker(0, os.getppid(), [], None, 30, cfg, Log())
    made.pid = 4242
    return made


def test_the_first_request_gets_the_header_deadline_and_later_ones_keepalive():
    w = worker(keepalive=75)
    w.guard(2.5, 0)
    w.first_request.add(gevent.getcurrent())
    assert w.timeout_ctx().seconds == 2.5
    w.first_request.discard(gevent.getcurrent())
    assert w.timeout_ctx().seconds == 75
    w.guard(0.0, 0)  # off: gunicorn's own KEEPALIVE for every request
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
    assert server.max_accept == 1 and server.handle.func == w.handle and server.handle.args == (listener,)
    server.start()
    spawned = []
    monkeypatch.setattr(gevent, "spawn", spawned.append)
    w.handle_exit(15, None)
    assert w.alive is False and spawned == [w.stop_accepting]
    w.stop_accepting()
    w.stop_accepting()  # gunicorn's loop closes them again a second later: harmless
    assert server.closed and w.log.lines[-1] == ("info", "worker 4242 stopped accepting connections")


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
