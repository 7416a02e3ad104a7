"""Starts ki2api for real under gunicorn with gevent workers, for integration tests and benchmarks."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import requests

from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file

REPO = Path(__file__).resolve().parents[2]
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A running `gunicorn -c config/gunicorn.conf.py wsgi:app` with its own environment and log file."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "API_KEY"))}
        full_env.update(env, HOST="127.0.0.1", PORT=str(self.port), WEB_CONCURRENCY=str(workers))
        full_env.setdefault("LOG_LEVEL", "INFO")
        self._log = open(log_path, "ab")
        full_env["KI2API_DOTENV"] = os.devnull  # a developer's own .env must not leak into tests
        full_env["PYTHONPATH"] = str(REPO)
        self.proc = subprocess.Popen(GUNICORN, cwd=str(REPO),
                                     env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self.workers = workers

    def wait_ready(self, timeout: float = 30.0) -> "Gateway":
        """Poll /health until every worker could have booted; raise with the log if it never comes up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200 and self._booted():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log_text()}")

    def _booted(self) -> bool:
        return self.log_text().count("Booting worker") >= self.workers

    def log_text(self) -> str:
        """Everything gunicorn and ki2api wrote so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then wait for a graceful exit (SIGKILL after 20 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def module_gateway(fake: Any, folder: Path, expires_in: float = 3600, **env: str) -> Iterator[Gateway]:
    """One gateway for a whole test module, with its own token file and state in `folder`, pointed at `fake`.

    The fake is reset to the known login first: the gateway fetches models and credits as it starts, and must
    meet the fake as each test leaves it, not as the last module did (a refresh token spent there would mark
    this login dead). Each test then resets the fake itself (`fake_upstream`).
    """
    fake.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    token_file = write_token_file(folder / "sso" / "kiro-auth-token.json", expires_in=expires_in)
    base = {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake.url,
            "KIRO_REFRESH_URL": fake.refresh_url, "KIRO_OIDC_URL": fake.oidc_url,
            "KI2API_STATE_DIR": str(folder / "state"), "UPSTREAM_READ_TIMEOUT": "10"}
    gateway = Gateway({**base, **env}, folder / "gunicorn.log").wait_ready()
    try:
        yield gateway
    finally:
        gateway.stop()
