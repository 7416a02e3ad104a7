"""A TCP stand-in for Redis on a free loopback port: forward to a real Redis, refuse, or blackhole.

"refuse" accepts and closes at once (Redis unreachable, its data kept); "blackhole" accepts, reads and
records the commands, and never answers (a host that stopped answering, as behind a dead route).
"""
from __future__ import annotations

import re
import socket
import threading

_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")
MODES = ("forward", "refuse", "blackhole")


class RedisProxy:
    """One listener; `mode` decides what each new connection gets. Switching away from "forward" cuts the
    connections already forwarded."""

    def __init__(self, target_port: int | None = None, mode: str = "forward") -> None:
        self.target_port = target_port
        self.mode = mode
        self.commands: list[str] = []  # every command name a blackholed connection sent, in order
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="redis-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def set_mode(self, mode: str) -> None:
        """forward | refuse | blackhole, for connections from now on; open connections are cut unless forwarding."""
        assert mode in MODES, mode
        self.mode = mode
        if mode != "forward":
            self._cut()

    def sent_since(self, index: int) -> list[str]:
        """The commands blackholed connections sent after the first `index` of them."""
        with self._lock:
            return self.commands[index:]

    def close(self) -> None:
        """Stop listening and cut every connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()
        self._cut()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            if self.mode == "refuse":
                conn.close()
            elif self.mode == "blackhole":
                self._track(conn)
                threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()
            else:
                self._forward(conn)

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port or 0), timeout=5)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        self._track(conn, upstream)
        for source, sink in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        buffered = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffered += data
            found = list(_COMMAND.finditer(buffered))
            if found:
                with self._lock:
                    self.commands += [m.group(1).decode().upper() for m in found]
                buffered = buffered[found[-1].end():]

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open += sockets

    def _cut(self) -> None:
        with self._lock:
            doomed, self._open = self._open, []
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
