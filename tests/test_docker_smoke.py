"""`make docker-test` where it cannot build: it says why and succeeds, the one skip allowed."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.gateway import REPO


def smoke(path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tests.docker.smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_without_docker_it_prints_the_reason_and_succeeds(tmp_path):
    result = smoke(str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "docker-test skipped: no docker command"


def test_without_an_engine_or_base_image_it_prints_the_reason_and_succeeds(tmp_path):
    engine = tmp_path / "docker"
    engine.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    engine.chmod(0o755)
    result = smoke(f"{tmp_path}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "docker-test skipped: no Docker engine answers (docker info failed)"
