"""`FakeKiro`: starts the fake Kiro server in its own process and drives its /_control/ API (no gevent here)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 15.0
CONTROL_TIMEOUT = 10.0


class FakeKiro:
    """A fake Kiro server process and a client for its /_control/ API."""

    def __init__(self, proc: subprocess.Popen, port: int, workdir: str) -> None:
        self.proc = proc
        self.port = port
        self._workdir = workdir

    @classmethod
    def start(cls, port: int = 0, **state: Any) -> "FakeKiro":
        """Spawn the server (port 0: any free port) with the given start-up state and wait until it answers."""
        workdir = tempfile.mkdtemp(prefix="fake-kiro-")
        port_file = Path(workdir) / "port"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "tests.fakes.kiro", "--port", str(port), "--port-file", str(port_file),
                   "--state", json.dumps(state)]
        proc = subprocess.Popen(command, cwd=str(REPO), env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                shutil.rmtree(workdir, ignore_errors=True)
                raise RuntimeError(f"fake Kiro exited with {proc.returncode} before it was ready")
            if port_file.exists() and port_file.read_text().strip():
                fake = cls(proc, int(port_file.read_text()), workdir)
                try:
                    fake.stats()
                    return fake
                except requests.RequestException:
                    pass
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"fake Kiro was not ready within {START_TIMEOUT} s")

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:PORT (chat is url + /generateAssistantResponse)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def refresh_url(self) -> str:
        """The social refresh endpoint."""
        return f"{self.url}/refreshToken"

    @property
    def oidc_url(self) -> str:
        """The IdC (OIDC) refresh endpoint."""
        return f"{self.url}/token"

    def reset(self, **state: Any) -> dict[str, Any]:
        """Clear scripts, counters and records; go back to the start-up state overlaid with `state`."""
        return self._post("reset", state)

    def script(self, *specs: dict[str, Any]) -> dict[str, Any]:
        """Queue response specs; each answers `repeat` (default 1) chat requests in order."""
        return self._post("script", {"responses": list(specs)})

    def set_default(self, spec: dict[str, Any]) -> dict[str, Any]:
        """The spec that answers whenever the queue is empty ({} is the built-in default answer)."""
        return self._post("default", spec)

    def stats(self) -> dict[str, Any]:
        """Counters and gauges: chat_requests, refresh_calls, oidc_calls, open_streams, frames_sent, ...; `malformed`
        lists why chat bodies were refused as Kiro would refuse them (tests/helpers/kiro_request.py's rules)."""
        return self._get("stats")

    def script_search(self, *specs: dict[str, Any]) -> dict[str, Any]:
        """Queue web search answers (tests/fakes/kiro/websearch.py), one per search, in order."""
        return self._post("websearch", {"responses": list(specs)})

    def searches(self) -> list[dict[str, Any]]:
        """The recorded POST /mcp calls, oldest first: time, headers (lower-case), body, status."""
        return self._get("searches")

    def requests(self) -> list[dict[str, Any]]:
        """The recorded chat requests, oldest first: time, method, path, headers (lower-case), body, status, and
        the machine id (from the user agent) and conversationId each carried."""
        return self._get("requests")

    def calls(self) -> list[dict[str, Any]]:
        """The recorded refresh and usage calls, oldest first: time, method, path, headers (lower-case), machine_id."""
        return self._get("calls")

    def release(self) -> int:
        """Let streams held by `hold_after` continue; returns how many were held."""
        return self._post("release", {})["released"]

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "FakeKiro":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _get(self, name: str) -> Any:
        response = requests.get(f"{self.url}/_control/{name}", timeout=CONTROL_TIMEOUT)
        return _checked(response)

    def _post(self, name: str, body: dict[str, Any]) -> Any:
        response = requests.post(f"{self.url}/_control/{name}", json=body, timeout=CONTROL_TIMEOUT)
        return _checked(response)


def _checked(response: requests.Response) -> Any:
    if response.status_code != 200:
        raise ValueError(f"fake Kiro control API: {response.status_code} {response.text}")
    return response.json()
