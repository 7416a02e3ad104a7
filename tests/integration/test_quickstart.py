"""The README's quick start as a stranger meets it: a clean clone in an empty folder, `make run`, nothing else.

The committed tree is cloned into a temporary folder with nothing beside it (no ../shared), and `make run`
there builds its own virtual environment from requirements.txt alone, exactly as a newcomer's first command
does, then starts `gunicorn -c config/gunicorn.conf.py wsgi:app`. The server must serve /health on the port
it is given, list the models and stream a chat completion from the fake Kiro through the official openai SDK.
pip's own cache is used, so only the first run on a machine downloads anything.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import openai
import pytest
import requests

from tests.helpers.credentials import KEY
from tests.helpers.gateway import REPO, free_port

pytestmark = pytest.mark.integration

INSTALL_DEADLINE = 600.0  # a first install on a cold pip cache; a warm one takes seconds
SEEDS = {"pip", "setuptools", "wheel"}  # what `python -m venv` puts in every environment


def stranger_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a newcomer's shell: no test virtualenv on PATH, no PYTHONPATH, no ki2api settings."""
    test_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != test_bin)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIRO_", "KI2API_", "PYTHON", "VIRTUAL_ENV")) and k not in ("API_KEY", "PORT")}
    return {**env, "PATH": path, **extra}


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The committed tree, cloned into an empty folder."""
    folder = tmp_path_factory.mktemp("stranger") / "ki2api"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True, timeout=120)
    assert not (folder.parent / "shared").exists()
    return folder


@pytest.fixture
def make_run(clone, fake_upstream, token_file, tmp_path) -> Iterator[str]:
    """`make run` in the clone, pointed at the fake Kiro; yields the server's URL once /health answers."""
    port = free_port()
    env = stranger_env({"PORT": str(port), "HOST": "127.0.0.1", "API_KEY": KEY,
                        "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake_upstream.url,
                        "KIRO_REFRESH_URL": fake_upstream.refresh_url, "KIRO_OIDC_URL": fake_upstream.oidc_url,
                        "KI2API_STATE_DIR": str(tmp_path / "state"), "KIRO_USAGE_INTERVAL": "0"})
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + INSTALL_DEADLINE
        while not _answers(f"{url}/health"):
            assert proc.poll() is None, f"make run exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"no /health after {INSTALL_DEADLINE:.0f} s:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # make has already exited when the server could not start
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_make_run_on_a_clean_clone_serves_health_models_and_a_streamed_chat(make_run, fake_upstream):
    health = requests.get(f"{make_run}/health", timeout=10).json()
    assert health["status"] == "ok"
    client = openai.OpenAI(base_url=f"{make_run}/v1", api_key=KEY, max_retries=0, timeout=30)
    assert "claude-sonnet-4-5" in [m.id for m in client.models.list()]
    fake_upstream.script({"texts": ["Hello", " from", " Kiro."]})
    stream = client.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert pieces == ["Hello", " from", " Kiro."]


def pinned(requirements: Path) -> dict[str, str]:
    """{normalised name: version} of the `name[extras]==version` lines of a requirements file."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            pins[_normal(match.group(1))] = match.group(3)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_distribution_the_server_runs_with_is_pinned(make_run, clone):
    """The clone's runtime environment holds exactly the pinned packages: a new transitive one fails here."""
    listing = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c",
         "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version"
         " for d in m.distributions()}))"], check=True, capture_output=True, text=True, timeout=60)
    installed = {_normal(name): version for name, version in json.loads(listing.stdout).items()}
    installed = {name: version for name, version in installed.items() if name not in SEEDS}
    pins = pinned(clone / "requirements.txt")
    unpinned = {name: version for name, version in installed.items() if name not in pins}
    assert not unpinned, f"installed by requirements.txt but not pinned there: {unpinned}"
    assert installed == pins
