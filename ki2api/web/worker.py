"""ki2api's gunicorn worker: gunicorn's gevent worker, guarded against slow and greedy clients, that stops
accepting the moment it is told to stop (`worker_class = "ki2api.web.worker.Worker"`).

gunicorn's own run loop, keep-alive loop and HTTP parser are kept; three things are added:

- stop accepting at SIGTERM: gunicorn's loop closes its listeners only at its next once-a-second check of
  `alive`, and serves what it accepts until then. gunicorn builds each listener's server with
  `self.server_class(...)` when that is set; `_server` builds the same StreamServer as gunicorn's own branch
  and remembers it, so the SIGTERM handler can close it at once (closing twice is harmless in gevent).
  A subclass rather than replacing `ggevent.StreamServer` (a module global, for every gevent worker in the
  process) or copying gunicorn's `run()` (its graceful wait and forced stop would no longer follow gunicorn);
- a deadline for the request line and headers of a connection's first request (`REQUEST_HEADER_TIMEOUT`),
  through gunicorn's own `timeout_ctx` (which otherwise gives KEEPALIVE seconds): a client that sends its
  headers a byte at a time is closed after a few seconds instead of holding a connection slot;
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
        self.header_timeout = 0.0  # seconds; 0: gunicorn's own KEEPALIVE for the first request too
        self.per_address = 0  # open connections one address may hold; 0: no cap
        self.open_by_address: dict[str, int] = {}
        self.first_request: set[Any] = set()  # greenlets of connections whose first request is not read yet
        self.refused: dict[str, tuple[float, int]] = {}  # address -> (last warned, refused since)

    def guard(self, header_timeout: float, per_address: int) -> None:
        """Set the first request's header deadline (seconds, 0 off) and the per-address cap (0 off)."""
        self.header_timeout, self.per_address = header_timeout, per_address

    def _server(self, listener: Any, spawn: Any, application: Any = None, log: Any = None,
                handler_class: Any = None, environ: Any = None, **ssl_args: Any) -> StreamServer:
        """The StreamServer gunicorn's own branch builds (its parser, `self.handle`), remembered for the stop."""
        server = StreamServer(listener, handle=partial(self.handle, listener), spawn=spawn, **ssl_args)
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
        try:
            super().handle(listener, client, addr)
        finally:
            self.first_request.discard(current)
            if address is not None:
                left = self.open_by_address[address] - 1
                if left:
                    self.open_by_address[address] = left
                else:
                    del self.open_by_address[address]

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        """A request whose headers are in: later ones on this connection get gunicorn's KEEPALIVE."""
        self.first_request.discard(gevent.getcurrent())
        return super().handle_request(listener_name, req, sock, addr)

    def timeout_ctx(self) -> gevent.Timeout:
        """How long gunicorn waits for a request's line and headers: `header_timeout` for a connection's first,
        KEEPALIVE (idle time included) for the later ones. Expiring closes the connection without an answer."""
        first = self.header_timeout and gevent.getcurrent() in self.first_request
        return gevent.Timeout(self.header_timeout if first else self.cfg.keepalive, False)

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
