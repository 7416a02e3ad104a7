"""A real `redis-server` (the Debian package) on a free loopback port, in a temporary directory, for tests."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.ci import missing
from tests.helpers.gateway import free_port

START_TIMEOUT = 15.0


def redis_server_binary() -> str:
    """The redis-server binary; a missing one skips the test, or fails it under CI (tests/helpers/ci.py)."""
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
                                             else None)
    if found:
        return found
    missing("redis-server is not installed (scripts/system-deps.sh installs the Debian package redis-server)")


def _ping(port: int) -> bool:
    """True if something on the port answers a RESP PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process: no persistence, loopback only; stop() and start() again keep the port."""

    def __init__(self, workdir: Path) -> None:
        self.binary = redis_server_binary()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0"""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start (again) and wait until it answers PING."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                   "--save", "", "--appendonly", "no", "--daemonize", "no",
                   "--logfile", str(self.workdir / "redis.log")]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            if _ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s); the data is gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        """The end of redis-server's log."""
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"
