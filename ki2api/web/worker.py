"""ki2api's gunicorn worker: gunicorn's gevent worker, guarded against slow and greedy clients, that stops
accepting the moment it is told to stop (`worker_class = "ki2api.web.worker.Worker"`).

gunicorn's own run loop, keep-alive loop and HTTP parser are kept; three things are added:

- stop accepting at SIGTERM: gunicorn's loop closes its listeners only at its next once-a-second check of
  `alive`, and serves what it accepts until then. gunicorn builds each listener's server with
  `self.server_class(...)` when that is set; `_server` builds the same StreamServer as gunicorn's own branch
  and remembers it, so the SIGTERM handler can close it at once (closing twice is harmless in gevent).
  A subclass rather than replacing `ggevent.StreamServer` (a module global, for every gevent worker in the
  process) or copying gunicorn's `run()` (its graceful wait and forced stop would no longer follow gunicorn);
- a deadline for a request's line and headers (`REQUEST_HEADER_TIMEOUT`), through gunicorn's own
  `timeout_ctx` (which otherwise gives KEEPALIVE seconds for the idle wait and the headers together): from
  the connection's opening for its first request, from the first byte of each later one (the idle wait
  before it still gets KEEPALIVE). A client that sends its headers a byte at a time is closed after a few
  seconds instead of holding a connection slot;
- a cap on the connections one client address holds open in this worker (`MAX_CONNECTIONS_PER_ADDRESS`):
  beyond it a connection is answered 429 in JSON and closed, so one client cannot take all of
  WORKER_CONNECTIONS. Off behind a proxy (TRUSTED_PROXIES > 0), whose address every connection has.

Imported by gunicorn's master (it loads the worker class), which does not patch: gevent is imported, not
started, there, as gunicorn's own gevent worker does.
"""
from __future__ import annotations

import socket
import time
from functools import partial
from typing import Any

import gevent
from gevent.server import StreamServer
from gunicorn.workers.ggevent import GeventWorker

from .protocol_errors import error_response

_WARN_EVERY = 60.0  # seconds between two log lines about one address refused for too many connections
_LINGER, _LINGER_READ = 1.0, 65536  # a refused connection: seconds and bytes read before it is closed


class Worker(GeventWorker):
    """gunicorn's gevent worker with a header deadline, a per-address connection cap and an immediate stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_class = self._server  # gunicorn's run() builds each listener's server with it
        self.servers: list[StreamServer] = []
        self.header_timeout = 0.0  # seconds; 0: gunicorn's own KEEPALIVE for the idle wait and headers together
        self.per_address = 0  # open connections one address may hold; 0: no cap
        self.open_by_address: dict[str, int] = {}
        self.first_request: set[Any] = set()  # greenlets of connections whose first request is not read yet
        self.clients: dict[Any, Any] = {}  # greenlet -> its connection's socket
        self.refused: dict[str, tuple[float, int]] = {}  # address -> (last warned, refused since)

    def guard(self, header_timeout: float, per_address: int) -> None:
        """Set the header deadline (seconds, 0 off) and the per-address cap (0 off)."""
        self.header_timeout, self.per_address = header_timeout, per_address

    def _server(self, listener: Any, spawn: Any, application: Any = None, log: Any = None,
                handler_class: Any = None, environ: Any = None, **ssl_args: Any) -> StreamServer:
        """The StreamServer gunicorn's own branch builds (its parser, `self.handle`), remembered for the stop."""
        server = StreamServer(listener, handle=partial(self.handle, Listener(listener)), spawn=spawn, **ssl_args)
        if self.cfg.workers > 1:
            server.max_accept = 1  # as gunicorn: leave the other connections waiting to the other workers
        self.servers.append(server)
        return server

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop at once (from a greenlet: not inside the signal handler); open requests finish."""
        super().handle_exit(sig, frame)
        gevent.spawn(self.stop_accepting)

    def stop_accepting(self) -> None:
        """Close this worker's listeners: new connections go to other workers, or are refused once none listens."""
        for server in self.servers:
            server.close()
        self.log.info("worker %s stopped accepting connections", self.pid)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """One connection: refused beyond the per-address cap, else served by gunicorn, counted while open."""
        address = addr[0] if isinstance(addr, tuple) and self.per_address else None
        if address is not None and self.open_by_address.get(address, 0) >= self.per_address:
            self._refuse(client, address)
            return
        current = gevent.getcurrent()
        if address is not None:
            self.open_by_address[address] = self.open_by_address.get(address, 0) + 1
        self.first_request.add(current)
        self.clients[current] = client
        try:
            super().handle(listener, client, addr)
        finally:
            self.first_request.discard(current)
            self.clients.pop(current, None)
            if address is not None:
                left = self.open_by_address[address] - 1
                if left:
                    self.open_by_address[address] = left
                else:
                    del self.open_by_address[address]

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        """A request whose headers are in: later ones on this connection may first wait KEEPALIVE idle."""
        self.first_request.discard(gevent.getcurrent())
        return super().handle_request(listener_name, req, sock, addr)

    def timeout_ctx(self) -> Any:
        """How long gunicorn waits for a request's line and headers (see RequestWait): `header_timeout` from
        now for a connection's first request; for a later one KEEPALIVE idle, then `header_timeout` from its
        first byte. Without a header deadline, gunicorn's own: KEEPALIVE for the wait and the headers."""
        current = gevent.getcurrent()
        client = self.clients.get(current)
        if not self.header_timeout or client is None:
            return gevent.Timeout(self.cfg.keepalive, False)
        idle = 0.0 if current in self.first_request else float(self.cfg.keepalive)
        return RequestWait(client.fileno(), idle, self.header_timeout)

    def _refuse(self, client: Any, address: str) -> None:
        """Answer 429 and close; what the client sent is read (a second at most) so that closing does not reset
        the connection before the client has read the answer."""
        try:
            client.sendall(error_response(429, "Too Many Requests",
                                          f"more than {self.per_address} open connections from this address"))
            client.shutdown(socket.SHUT_WR)
            with gevent.Timeout(_LINGER, False):
                while client.recv(_LINGER_READ):
                    pass
        except OSError:
            pass
        finally:
            client.close()
        now = time.monotonic()
        warned, count = self.refused.get(address, (0.0, 0))
        if now - warned < _WARN_EVERY:
            self.refused[address] = (warned, count + 1)
            return
        if len(self.refused) > 1024:  # many addresses: forget old ones rather than grow
            self.refused.clear()
        self.refused[address] = (now, 0)
        self.log.warning("connections: refused %s connection(s) from %s, which holds %s open "
                         "(MAX_CONNECTIONS_PER_ADDRESS)", count + 1, address, self.per_address)


class Listener:
    """What gunicorn's handle() uses of a connection's listening socket: its name, read once when the server is
    built. Asked of the socket itself, it fails (EBADF, logged with a traceback) for a connection accepted just
    before the stop closed the socket, whose greenlet starts after."""

    def __init__(self, sock: Any) -> None:
        self.name = sock.getsockname()

    def getsockname(self) -> Any:
        """The listening socket's address, as when it was open."""
        return self.name


class _Expired(BaseException):
    """Thrown into a connection's greenlet when its wait for a request ends, caught by RequestWait itself (a
    BaseException, like gevent.Timeout, so that no `except Exception` on the way swallows it)."""


class RequestWait:
    """gunicorn's `with self.timeout_ctx(): req = next(parser)`, with two deadlines: up to `idle` seconds for
    the request's first byte (0: none, the request is due now), then `headers` seconds for its line and
    headers. Like gunicorn's `gevent.Timeout(seconds, False)`, expiring ends the wait silently (no request:
    gunicorn closes the connection). One timer of gevent's loop and, while idle, one I/O watcher on the socket.
    """

    def __init__(self, fd: int, idle: float, headers: float) -> None:
        self.fd, self.idle, self.headers = fd, idle, headers
        self.loop = gevent.get_hub().loop
        self.expired = _Expired()
        self.greenlet: Any = None
        self.timer: Any = None
        self.readable: Any = None

    def __enter__(self) -> "RequestWait":
        self.greenlet = gevent.getcurrent()
        if self.idle and self.fd >= 0:
            self.readable = self.loop.io(self.fd, 1)
            self.readable.start(self._request_started)
            self._arm(self.idle)
        else:
            self._arm(self.headers)
        return self

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.stop()
        self.timer = self.loop.timer(seconds, priority=-1)  # as gevent.Timeout: data due at the same time wins
        self.timer.start(self._expire)

    def _request_started(self) -> None:
        """The first byte of the request is there (or the client closed): the header deadline starts now."""
        self.readable.stop()
        self._arm(self.headers)

    def _expire(self) -> None:
        self.greenlet.throw(self.expired)

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        for watcher in (self.readable, self.timer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        return value is self.expired
