"""`make docker-test`: build the image, start it with compose against the fake Kiro, check that it serves.

Needs a Docker engine and the base image (python:X.Y-slim) already present: these machines reach only the
package registries, so the base image cannot be pulled here. Where either is missing, it says why and exits 0:
the one check that may be skipped (tests/test_docker_config.py runs the image's install step and start command
without an engine on every `make test`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.fakes.kiro.process import FakeKiro
from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file
from tests.helpers.dockerfile import only
from tests.helpers.gateway import REPO, free_port

PROJECT = "ki2api-docker-test"
COMPOSE = ["docker", "compose", "-p", PROJECT, "-f", str(REPO / "docker-compose.yml"),
           "-f", str(REPO / "tests" / "docker" / "compose.test.yml")]
DEADLINE = 60.0


def why_not() -> str | None:
    """None if an image can be built here, else the reason it cannot."""
    if not shutil.which("docker"):
        return "no docker command"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker engine answers (docker info failed)"
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode != 0:
        return "no docker compose plugin"
    base = only("FROM")
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True, timeout=30).returncode != 0:
        return f"the base image {base} is not present and cannot be pulled from here"
    return None


def wait_for_health(url: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the container did not serve /health within {DEADLINE:.0f} s")


def check(url: str) -> None:
    """/health, /v1/models and one streamed chat completion, as a user's first requests."""
    wait_for_health(url)
    headers = {"Authorization": f"Bearer {KEY}"}
    models = requests.get(f"{url}/v1/models", headers=headers, timeout=10).json()
    assert any(m["id"] == "claude-sonnet-4-5" for m in models["data"]), models
    answer = requests.post(f"{url}/v1/chat/completions", headers=headers, timeout=30, stream=True,
                           json={"model": "claude-sonnet-4-5", "stream": True,
                                 "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200, answer.text
    lines = [line for line in answer.iter_lines() if line.startswith(b"data: ")]
    assert lines[-1] == b"data: [DONE]", lines[-3:]
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in lines[:-1] if json.loads(line[6:])["choices"])
    assert text == "Hello from the image.", text


def main() -> int:
    reason = why_not()
    if reason:
        print(f"docker-test skipped: {reason}")
        return 0
    sso = Path(tempfile.mkdtemp(prefix="ki2api-docker-sso-"))
    write_token_file(sso / "kiro-auth-token.json")
    uid, gid = only("USER").split(":")
    if os.geteuid() == 0:
        os.chown(sso, int(uid), int(gid))
        os.chown(sso / "kiro-auth-token.json", int(uid), int(gid))
    port = free_port()
    with FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH) as fake:
        fake.script({"texts": ["Hello", " from", " the image."]})
        env = {**os.environ, "KIRO_SSO_DIR": str(sso), "PUID": uid, "PGID": gid, "KI2API_TEST_PORT": str(port),
               "KI2API_TEST_KEY": KEY, "KI2API_TEST_KIRO": fake.url, "KI2API_TEST_REFRESH": fake.refresh_url,
               "KI2API_TEST_OIDC": fake.oidc_url}
        try:
            subprocess.run([*COMPOSE, "up", "-d", "--build", "ki2api"], env=env, check=True, timeout=900)
            check(f"http://127.0.0.1:{port}")
        except BaseException:
            subprocess.run([*COMPOSE, "logs", "ki2api"], env=env, timeout=60)
            raise
        finally:
            subprocess.run([*COMPOSE, "down", "-v"], env=env, timeout=180)
            shutil.rmtree(sso, ignore_errors=True)
    print("docker-test passed: the image built, started with compose and served /health, /v1/models and a stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
