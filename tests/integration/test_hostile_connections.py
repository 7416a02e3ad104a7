"""Slow and greedy clients on gunicorn's port without nginx: the header deadline and the per-address cap.

The attacker connects from 127.0.0.2 (all of 127/8 is loopback on Linux), the well-behaved client from
127.0.0.1, so the cap tells them apart. The full slowloris (thousands of connections) is a bench scenario
(`python -m bench slowloris`, docs/performance.md); these are its bounded versions.
"""
from __future__ import annotations

import json
import select
import socket
import time

import pytest
import requests

pytestmark = pytest.mark.integration

ATTACKER = "127.0.0.2"
DEADLINE = 20.0


def connect(port: int, source: str = ATTACKER) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """True if the server ended the connection within `wait` seconds (end of stream or reset)."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def health(sock: socket.socket) -> tuple[int, bytes]:
    """GET /health on an open keep-alive connection: (status, body)."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {head!r}"
        head += chunk
    head, body = head.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return int(head.split()[1]), body


def trickle_until_closed(sock: socket.socket) -> float:
    """Send a request's headers a byte every 0.1 s until the server closes; seconds it took."""
    started = time.monotonic()
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:  # never ends within the test
        sock.sendall(bytes([byte]))
        if closed_by_server(sock, 0.1):
            return time.monotonic() - started
        assert time.monotonic() - started < DEADLINE
    pytest.fail("the server never closed a connection trickling its headers")


def test_a_first_request_sent_a_byte_at_a_time_is_closed_at_the_header_deadline(start_gateway):
    gw = start_gateway(REQUEST_HEADER_TIMEOUT="1", KEEPALIVE="75")
    slow = connect(gw.port)
    elapsed = trickle_until_closed(slow)
    slow.close()
    assert 1.0 <= elapsed < 5.0, elapsed  # the deadline, not KEEPALIVE's 75 s
    assert requests.get(f"{gw.url}/health", timeout=DEADLINE).status_code == 200


def test_a_kept_alive_connection_may_idle_but_not_trickle_its_next_request(start_gateway):
    gw = start_gateway(REQUEST_HEADER_TIMEOUT="1", KEEPALIVE="75")
    sock = connect(gw.port)
    assert health(sock)[0] == 200
    assert not closed_by_server(sock, 2.0)  # idle twice the header deadline: still open (KEEPALIVE)
    assert health(sock)[0] == 200
    elapsed = trickle_until_closed(sock)  # the next request trickles: the deadline counts from its first byte
    sock.close()
    assert 1.0 <= elapsed < 5.0, elapsed
    assert "Traceback" not in gw.log_text()


def test_one_address_gets_its_cap_of_connections_and_a_429_beyond(start_gateway):
    gw = start_gateway(MAX_CONNECTIONS_PER_ADDRESS="3", REQUEST_HEADER_TIMEOUT="30")
    held = [connect(gw.port) for _ in range(3)]
    for sock in held:  # served: each is open in the worker and counted
        assert health(sock)[0] == 200
    extra = connect(gw.port)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while chunk := extra.recv(4096):
        answer += chunk
    extra.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 429 ")
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    other = connect(gw.port, source="127.0.0.1")  # another address is served meanwhile
    assert health(other)[0] == 200
    other.close()
    held.pop().close()  # one of the three gone: the address may open one again
    deadline = time.monotonic() + DEADLINE
    while True:
        again = connect(gw.port)
        status, _ = health(again)
        again.close()
        if status == 200:
            break
        assert status == 429 and time.monotonic() < deadline  # until the worker has seen the close
    for sock in held:
        sock.close()
    log = gw.log_text()
    assert log.count(f"from {ATTACKER}, which holds 3 open") == 1  # one line, not one per refusal
    assert "Traceback" not in log


def test_behind_a_proxy_the_cap_is_the_proxys(start_gateway):
    gw = start_gateway(MAX_CONNECTIONS_PER_ADDRESS="1", TRUSTED_PROXIES="1")
    socks = [connect(gw.port) for _ in range(3)]  # all "from nginx"
    for sock in socks:
        assert health(sock)[0] == 200
    for sock in socks:
        sock.close()
