"""The public default key makes gunicorn's log warn at start-up, loudly when ki2api listens beyond loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from tests.helpers.gateway import GUNICORN, REPO, free_port

pytestmark = pytest.mark.integration


def start_and_read_log(tmp_path, host: str, api_key: str | None) -> str:
    """Start gunicorn as a deployment would (only HOST and API_KEY differ), wait until it answers, return its log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "API_KEY", "KI2API_"))}
    env.update(HOST=host, PORT=str(port), WEB_CONCURRENCY="1", KI2API_DOTENV=os.devnull, PYTHONPATH=str(REPO),
               KIRO_TOKEN_FILE=str(tmp_path / "none.json"), KI2API_STATE_DIR=str(tmp_path / "state"))
    if api_key is not None:
        env["API_KEY"] = api_key
    log_path = tmp_path / f"gunicorn-{host}-{api_key}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(GUNICORN, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return log_path.read_text()


def test_default_key_on_loopback_warns(tmp_path):
    log = start_and_read_log(tmp_path, "127.0.0.1", None)
    assert "API_KEY is the public default 'ki2api-key-2024'" in log
    assert "SECURITY" not in log


def test_default_key_beyond_loopback_warns_loudly(tmp_path):
    # Listens on every interface for the few seconds of the test; only loopback is ever contacted.
    log = start_and_read_log(tmp_path, "0.0.0.0", None)
    assert "SECURITY: API_KEY is the public default 'ki2api-key-2024' and ki2api listens on 0.0.0.0" in log
    assert "anyone who can reach this port can spend your Kiro quota" in log
    line = next(line for line in log.splitlines() if "SECURITY:" in line)
    assert "WARNING" in line


def test_own_key_starts_quietly(tmp_path):
    log = start_and_read_log(tmp_path, "0.0.0.0", "a-long-secret-of-my-own-0123456789")
    assert "public default" not in log
