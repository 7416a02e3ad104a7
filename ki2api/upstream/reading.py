"""Reading Kiro's answer body: in bounded pieces, and telling a silence apart from a slow read.

Pieces: a chunked body (Kiro's) is read at most READ_SIZE bytes at a time, and a piece waits for no more than
its HTTP chunk holds, so a paced answer goes on frame by frame while a whole answer sent as one huge chunk is
not taken into memory at once. Nothing is read ahead of the reader: the next piece is read only when asked
for, so a stream whose client is slow to take its bytes stops reading Kiro meanwhile.

Silences: with `keepalive` seconds, a b"" piece stands for each such silence of Kiro's, so a stream can tell
its client it is still there without a second greenlet (web/heartbeat.py) and its hand-off per frame. Before
each read the buffered reader is asked for bytes without blocking (the socket's timeout is 0 for that peek,
which consumes nothing), and only when it has none is the socket awaited, for at most `keepalive` seconds.
The wait replaces the wait the read itself would have made, so a paced frame costs the same system calls.
A silence in the middle of an HTTP chunk (never seen from Kiro, which writes a frame per chunk) is not told.
"""
from __future__ import annotations

import select
import ssl
import time
from typing import Any, Callable, Iterator

import requests

READ_SIZE = 64 * 1024  # the most read from Kiro at once per stream (a frame is about 100 bytes, a burst a few KiB)


def pieces(response: requests.Response, keepalive: float | None = None) -> Iterator[bytes]:
    """The body as it arrives, in pieces of at most READ_SIZE bytes; with `keepalive`, b"" after each silence
    of that many seconds. Transport errors are requests' own, as iter_content raises them; a silence as long as
    the socket's timeout (UPSTREAM_READ_TIMEOUT) is a ReadTimeout, as a blocking read would have made it."""
    chunks = response.iter_content(chunk_size=READ_SIZE)
    if not keepalive:
        yield from chunks
        return
    wait, limit = _waiter(), _timeout_of(response.raw)
    while True:
        quiet_since = time.monotonic()
        while True:
            left = limit - (time.monotonic() - quiet_since) if limit else keepalive
            if left <= 0:
                raise requests.exceptions.ReadTimeout(f"Kiro sent nothing for {limit:g} s")
            if _readable(response.raw, min(keepalive, left), wait):
                break
            if keepalive <= left:  # a whole interval of silence (not the rest of the read timeout)
                yield b""
        try:
            piece = next(chunks)
        except StopIteration:
            return
        yield piece


def _timeout_of(raw: Any) -> float | None:
    """The socket's timeout (the read timeout the call was made with), if the body still has a socket."""
    sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock.gettimeout() if sock is not None else None


def _waiter() -> Callable[[Any, float], bool]:
    """How to wait for a socket to become readable: on its own watcher under gevent, with select elsewhere."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        monkey = None
    if monkey is not None and monkey.is_module_patched("socket"):
        return _wait_gevent
    return lambda sock, timeout: bool(select.select([sock], [], [], timeout)[0])


def _wait_gevent(sock: Any, timeout: float) -> bool:
    """Wait as the socket's own blocking read waits (its cached libev watcher: gevent.socket.wait_read would
    make a watcher per call, a few µs per frame), with `timeout` as the socket's timeout meanwhile."""
    sock.settimeout(timeout)
    try:
        sock._wait(sock._read_event)
    except OSError:  # socket.timeout: the silence lasted `timeout`
        return False
    return True


def _readable(raw: Any, timeout: float, wait: Callable[[Any, float], bool]) -> bool:
    """True once the body has a byte to read (or is over, or broken: the read then says so); False after
    `timeout` seconds without one."""
    fp = getattr(getattr(raw, "_fp", None), "fp", None)  # http.client's buffered reader; None once read to the end
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is None:
        return True
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        if fp.peek(1):
            return True
        return wait(sock, timeout)
    except ssl.SSLWantReadError:  # TLS without a whole record yet: as good as nothing to read
        return wait(sock, timeout)
    except (OSError, ValueError):  # closed or broken: let the read raise it where errors are mapped
        return True
    finally:
        sock.settimeout(previous)
