"""Runs the real nginx (Debian's package) in the foreground with config/nginx.conf, re-pointed at test ports."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.ci import missing
from tests.helpers.gateway import REPO, free_port

NGINX = "/usr/sbin/nginx"
SITE = REPO / "config" / "nginx.conf"
START_TIMEOUT = 15.0
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_binary() -> str:
    """The nginx binary; a missing one skips the test, or fails it under CI (tests/helpers/ci.py)."""
    path = NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")
    if path:
        return path
    missing("nginx is not installed (apt-get install nginx-light; scripts/system-deps.sh installs it)")


def render_site(upstream_port: int, listen_port: int, text: str | None = None) -> str:
    """The shipped site with its upstream and listen lines replaced (each must occur exactly once)."""
    site = SITE.read_text() if text is None else text
    site, upstreams = re.subn(r"server 127\.0\.0\.1:8989;", f"server 127.0.0.1:{upstream_port};", site)
    site, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", site)
    assert (upstreams, listens) == (1, 1), "config/nginx.conf no longer has one upstream server and one listen 80"
    return site


def main_config(prefix: Path) -> str:
    """A minimal nginx.conf around the site, with every path inside `prefix`."""
    temps = "\n".join(f"    {name}_temp_path {prefix / name};" for name in TEMP_DIRS)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the 0700 test directory
    return (f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{\n    access_log {prefix / 'access.log'};\n{temps}\n    include {prefix / 'ki2api.conf'};\n}}\n")


class Nginx:
    """nginx in the foreground (daemon off) under a temporary prefix, proxying to a test gateway."""

    def __init__(self, upstream_port: int) -> None:
        self.binary = nginx_binary()
        self.prefix = Path(tempfile.mkdtemp(prefix="ki2api-nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.prefix / "ki2api.conf").write_text(render_site(upstream_port, self.port))
        self.config = self.prefix / "nginx.conf"
        self.config.write_text(main_config(self.prefix))
        self.proc: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        """nginx with this prefix and config, in the foreground, errors to stderr until the config is read."""
        return [self.binary, "-p", str(self.prefix), "-c", str(self.config), "-e", "stderr", "-g", "daemon off;",
                *extra]

    def test_config(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the rendered configuration."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> "Nginx":
        """Start nginx and wait until it accepts connections."""
        log = open(self.prefix / "stderr.log", "wb")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {START_TIMEOUT} s: {self.log_text()}")

    def log_text(self) -> str:
        """nginx's stderr and error log."""
        parts = [self.prefix / "stderr.log", self.prefix / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), then SIGKILL after 10 s; remove the prefix."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)
