"""The public default key makes gunicorn's log warn at start-up, loudly when ki2api listens beyond loopback.

The master warns once, for the addresses it really listens on (HOST, or a `-b` given to gunicorn), and the
workers do not repeat it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import requests

from ki2api.settings import DEFAULT_API_KEY
from tests.helpers.gateway import GUNICORN, REPO, free_port

pytestmark = pytest.mark.integration
QUIET = "API_KEY is the public default 'ki2api-key-2024'; set your own key"
LOUD = "SECURITY: API_KEY is the public default 'ki2api-key-2024' and ki2api listens on"


def worker_pids(port: int, key: str) -> set[int]:
    """The pids of the workers that answered one /dashboard/data each (none if nobody answers yet)."""
    try:
        response = requests.get(f"http://127.0.0.1:{port}/dashboard/data", timeout=1,
                                headers={"Authorization": f"Bearer {key}"})
    except requests.RequestException:
        return set()
    return {response.json()["server"]["worker_pid"]} if response.status_code == 200 else set()


def start_and_read_log(tmp_path, host: str, api_key: str | None, bind: str | None = None, workers: int = 2) -> str:
    """Start gunicorn as a deployment would (HOST, API_KEY and an optional `-b` differ), wait until every worker
    has answered (each built its app, where a warning would be logged), stop it and return its log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "API_KEY", "KI2API_"))}
    env.update(HOST=host, PORT=str(port), WEB_CONCURRENCY=str(workers), KI2API_DOTENV=os.devnull,
               PYTHONPATH=str(REPO), KIRO_TOKEN_FILE=str(tmp_path / "none.json"),
               KI2API_STATE_DIR=str(tmp_path / "state"))
    if api_key is not None:
        env["API_KEY"] = api_key
    command = GUNICORN if bind is None else [*GUNICORN, "-b", bind.replace("PORT", str(port))]
    log_path = tmp_path / f"gunicorn-{host}-{api_key}-{bind}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=str(REPO), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while len(seen) < workers:
            assert proc.poll() is None, log_path.read_text()
            seen |= worker_pids(port, api_key or DEFAULT_API_KEY)
            assert time.monotonic() < deadline, (seen, log_path.read_text())
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return log_path.read_text()


def test_default_key_on_loopback_warns_once(tmp_path):
    log = start_and_read_log(tmp_path, "127.0.0.1", None)
    assert log.count(QUIET) == 1, log
    assert "SECURITY" not in log


def test_default_key_beyond_loopback_warns_loudly_once(tmp_path):
    # Listens on every interface for the few seconds of the test; only loopback is ever contacted.
    log = start_and_read_log(tmp_path, "0.0.0.0", None)
    assert "anyone who can reach this port can spend your Kiro quota" in log
    [line] = [line for line in log.splitlines() if "SECURITY:" in line]  # the master's, not one per worker
    assert LOUD + " 0.0.0.0:" in line and "WARNING" in line
    assert QUIET not in log


def test_the_warning_follows_the_real_bind_not_host(tmp_path):
    """`gunicorn -b 0.0.0.0:PORT` with HOST=127.0.0.1 listens beyond loopback: the warning must say so."""
    log = start_and_read_log(tmp_path, "127.0.0.1", None, bind="0.0.0.0:PORT")
    [line] = [line for line in log.splitlines() if "SECURITY:" in line]
    assert LOUD + " 0.0.0.0:" in line
    assert QUIET not in log


def test_own_key_starts_quietly(tmp_path):
    log = start_and_read_log(tmp_path, "0.0.0.0", "a-long-secret-of-my-own-0123456789")
    assert "public default" not in log


def test_the_master_loads_no_web_library_before_gevent_patches_the_workers(tmp_path):
    """config/gunicorn.conf.py reads ki2api.settings in the master: that must not import requests (and ssl's
    users) there, or every worker's gevent patching would warn and leave those modules unpatched."""
    log = start_and_read_log(tmp_path, "127.0.0.1", "a-long-secret-of-my-own-0123456789", workers=1)
    assert "MonkeyPatchWarning" not in log and "Traceback" not in log, log
