"""scripts/system-deps.sh, the step of `make test` that brings the servers the integration tests drive.

As root on a bare Debian/Ubuntu machine it installs what is missing with apt-get; as anyone else it only says
what to install; with everything present it does nothing at all. apt-get is replaced by a stub that records
its calls, so nothing is installed by these tests.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.ci import missing
from tests.helpers.gateway import REPO

SCRIPT = (REPO / "scripts" / "system-deps.sh").read_text()
NOBODY = 65534
TOOLS = ("node", "wrk", "nginx", "id")  # found on PATH by the script (nginx also at /usr/sbin/nginx)


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """A PATH directory any uid may read, with an apt-get stub that logs its arguments to apt-get.log."""
    root = Path(tempfile.mkdtemp(prefix="ki2api-sysdeps-"))
    os.chmod(root, 0o777)
    stub = root / "apt-get"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {root}/apt-get.log\n')
    stub.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run(bin_dir: Path, path: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    kwargs = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}
    return subprocess.run(["/bin/sh", "-s"], input=SCRIPT, text=True, capture_output=True, timeout=60,
                          env={"PATH": path}, **kwargs)


def apt_calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "apt-get.log"
    return log.read_text().splitlines() if log.exists() else []


def with_tools_but_redis(bin_dir: Path) -> str:
    """A PATH holding the stub and the tools the script looks up on PATH, redis-server left out."""
    for tool in TOOLS:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_with_everything_present_it_installs_nothing_and_says_nothing(bin_dir):
    present = [shutil.which(t) for t in ("redis-server", "node", "wrk")] + [
        os.access(p, os.X_OK) for p in ("/usr/bin/chromium", "/usr/sbin/nginx", "/usr/bin/python3.11")]
    if not all(present):
        missing("nginx, redis-server, chromium, node, wrk or python3.11 is not installed here (make test installs "
                "them as root)")
    result = run(bin_dir, f"{bin_dir}:{os.environ['PATH']}")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert apt_calls(bin_dir) == []


def test_a_user_without_root_is_told_what_to_install_and_nothing_is_installed(bin_dir):
    path = with_tools_but_redis(bin_dir)
    if os.geteuid() == 0:
        result = run(bin_dir, path, as_nobody=True)
    else:
        result = run(bin_dir, path)
    assert result.returncode == 0
    assert "redis-server" in result.stderr and "install" in result.stderr
    assert apt_calls(bin_dir) == []


def test_root_installs_what_is_missing_from_debian_packages(bin_dir):
    if os.geteuid() != 0:
        missing("needs root: the script installs only as root (CI runs as root)")
    result = run(bin_dir, with_tools_but_redis(bin_dir))
    assert result.returncode == 0, result.stderr
    calls = apt_calls(bin_dir)
    assert calls[0] == "update -qq"
    assert calls[1].startswith("install -y") and "redis-server" in calls[1].split()
