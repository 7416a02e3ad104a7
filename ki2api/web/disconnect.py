"""Noticing a client that went away while ki2api waits on the upstream, so the upstream call ends at once.

Without this, a client that hangs up during a long silence upstream (the model thinking) is only
noticed at the next write, possibly minutes later, and the upstream connection stays open until then.
Under gunicorn's gevent worker, a greenlet waits for the client's socket to become readable: a client
that is waiting for its answer sends nothing, so readable means it closed (EOF or reset). Data instead
(a pipelined request) means it is still there, and the watch ends without doing anything. Elsewhere
(Flask's test client, other servers) watching is a no-op.

Two phases: while Kiro has not sent its answer's headers yet (WatchedAdapter, around the chat call only),
a disconnect throws ClientGone into the waiting call, which closes its connection and frees the account;
once the answer is open, the views watch with watch_client and abort the answer.
"""
from __future__ import annotations

import _socket
import logging
import os
import socket
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from flask import Flask, Response, g, has_request_context, request
from requests import PreparedRequest
from requests import Response as UpstreamResponse
from requests.adapters import HTTPAdapter

from ..errors import ClientGone
from ..observability.requestlog import note

log = logging.getLogger(__name__)


class WatchedAdapter(HTTPAdapter):
    """requests' HTTP adapter; a call to the watched URL made for a request is interruptible() while it waits."""

    watched: str | None = None

    def watch(self, url: str) -> None:
        """Make calls to `url` (the chat endpoint) end when their client leaves; never other calls (refreshes:
        one cut short after Kiro rotated the refresh token would lose the login)."""
        self.watched = url

    def send(self, prepared: PreparedRequest, *args: Any, **kwargs: Any) -> UpstreamResponse:
        """Send as requests does; for the watched URL, raise ClientGone if the client leaves meanwhile."""
        if prepared.url != self.watched:
            return super().send(prepared, *args, **kwargs)
        with interruptible():
            return super().send(prepared, *args, **kwargs)


@contextmanager
def interruptible() -> Iterator[None]:
    """While inside, a disconnect of this request's client raises ClientGone where the request's greenlet waits.

    Only under gunicorn's gevent worker, in the request's own greenlet; elsewhere a no-op. The exception is
    thrown from the hub only if the greenlet is still inside when the hub gets to it, never later.
    """
    sock = request.environ.get("gunicorn.socket") if has_request_context() else None
    if sock is None or not _under_gevent():
        yield
        return
    import gevent

    waiting, inside = gevent.getcurrent(), [True]

    def interrupt() -> None:
        if inside[0] and not waiting.dead:
            waiting.throw(ClientGone("The client closed the connection before Kiro answered"))

    watch = ClientWatch(sock.fileno(), lambda: gevent.get_hub().loop.run_callback(interrupt))  # thrown from the hub
    try:
        yield
    except ClientGone:
        note(outcome="client_closed")
        raise
    finally:
        inside[0] = False
        watch.stop()


def watch_client(on_gone: Callable[[], None]) -> None:
    """Call `on_gone` once if this request's client disconnects before its response is closed (streams included).

    `on_gone` runs in another greenlet than the request's: to stop a read blocked in the request's
    greenlet, pass something safe to call from elsewhere (`UpstreamStream.abort`), not the response's close().
    """
    sock = request.environ.get("gunicorn.socket")
    if sock is None or not _under_gevent():
        return
    g.setdefault("ki2api_watchers", []).append(ClientWatch(sock.fileno(), on_gone))


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
        watcher.stop()


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return False
    return monkey.is_module_patched("socket")


class ClientWatch:
    """Calls `on_gone` (in a greenlet of its own) once the client socket `fd` reports EOF or an error; stops
    watching if the client sends data instead (a pipelined request: it is still there).

    A libev read watcher whose callback runs in the hub, not a greenlet waiting: a parked greenlet per open
    stream would hold its stack for the stream's whole life (docs/performance.md). stop() before the socket
    is closed.
    """

    def __init__(self, fd: int, on_gone: Callable[[], None]) -> None:
        from gevent import get_hub

        self.fd, self.on_gone = fd, on_gone
        self._io: Any = get_hub().loop.io(fd, 1)  # 1: readable
        self._io.start(self._readable)

    def _readable(self) -> None:
        state = _peek(self.fd)  # in the hub: nothing here may block or switch
        if state == "none":
            return
        self.stop()
        if state == "gone":
            import gevent

            log.info("client disconnected; closing the upstream call")
            gevent.spawn(self.on_gone)

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        if self._io is not None:
            self._io.stop()
            self._io.close()
            self._io = None


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
