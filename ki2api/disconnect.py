"""Noticing a client that went away while ki2api waits on the upstream, so the upstream call ends at once.

Without this, a client that hangs up during a long silence upstream (the model thinking) is only
noticed at the next write, possibly minutes later, and the upstream connection stays open until then.
Under gunicorn's gevent worker, a greenlet waits for the client's socket to become readable: a client
that is waiting for its answer sends nothing, so readable means it closed (EOF or reset). Data instead
(a pipelined request) means it is still there, and the watch ends without doing anything. Elsewhere
(Flask's test client, other servers) watching is a no-op.
"""
from __future__ import annotations

import _socket
import logging
import os
import socket
from typing import Any, Callable

from flask import Flask, Response, g, request

log = logging.getLogger(__name__)


def watch_client(on_gone: Callable[[], None]) -> None:
    """Call `on_gone` once if this request's client disconnects before its response is closed (streams included).

    `on_gone` runs in another greenlet than the request's: to stop a read blocked in the request's
    greenlet, pass something safe to call from elsewhere (`UpstreamStream.abort`), not the response's close().
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is None or not _under_gevent():
        return
    import gevent

    watcher = gevent.spawn(_watch, sock.fileno(), on_gone)
    g.setdefault("ki2api_watchers", []).append(watcher)


def init_disconnect_watch(app: Flask) -> None:
    """Stop this request's watchers when its response is closed (after the last byte of a stream)."""

    @app.after_request
    def _stop_with_the_response(response: Response) -> Response:
        watchers = g.pop("ki2api_watchers", ())
        if watchers:
            response.call_on_close(lambda: _stop(watchers))
        return response

    @app.teardown_request
    def _stop_if_no_response(_exc: BaseException | None) -> None:
        _stop(g.pop("ki2api_watchers", ()))  # the request failed before it had a response


def _stop(watchers: Any) -> None:
    for watcher in watchers:
        watcher.kill(block=False)


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return False
    return monkey.is_module_patched("socket")


def _watch(fd: int, on_gone: Callable[[], None]) -> None:
    from gevent.socket import wait_read

    while True:
        try:
            wait_read(fd)
        except (OSError, ValueError):  # the socket was closed under us: the request is over
            return
        state = _peek(fd)
        if state == "data":
            return
        if state == "gone":
            log.info("client disconnected; closing the upstream call")
            on_gone()
            return


def _peek(fd: int) -> str:
    """'gone' (EOF or error), 'data' (bytes waiting), or 'none' (a spurious wake-up), without consuming."""
    try:
        probe: Any = _socket.socket(fileno=os.dup(fd))  # the C socket: no gevent waiting, no shared state
    except OSError:
        return "gone"
    try:
        return "data" if probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) else "gone"
    except BlockingIOError:
        return "none"
    except OSError:
        return "gone"
    finally:
        probe.close()
