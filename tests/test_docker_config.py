"""Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker engine (none runs on these machines).

Static: the files are parsed (compose with PyYAML and compose's ${VAR:-default} interpolation) and their
ports, mounts, users, commands and health check asserted. Live: the image's install step runs in a fresh
virtual environment (requirements.txt alone), and its CMD is run from there as the image would run it (its WORKDIR
laid out from the COPY lines, its ENV with paths re-rooted under a temporary directory, as its USER when the tests
run as root) against the fake Kiro, and its HEALTHCHECK command is run against it. `make docker-test` builds and
starts the real image where a Docker engine is present.
"""
from __future__ import annotations

import json
import os
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests
import yaml

from ki2api.settings import Settings
from tests.helpers.credentials import KEY, write_token_file
from tests.helpers.ci import missing
from tests.helpers.dockerfile import (COMPOSE, bind_mounts, exec_form, healthcheck_command, image_env, instructions,
                                     interpolate, only, service)
from tests.helpers.gateway import REPO, free_port

CMD = ["gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"]
DEADLINE = 30.0


def gunicorn_setting(name: str, monkeypatch) -> object:
    monkeypatch.setenv("KI2API_DOTENV", os.devnull)
    for var in ("GRACEFUL_TIMEOUT", "KEEPALIVE", "PORT", "HOST"):
        monkeypatch.delenv(var, raising=False)
    return runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))[name]


# -- Dockerfile ---------------------------------------------------------------------------------------------------

def test_slim_python_base_matching_the_project():
    assert only("FROM") == f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def test_dependencies_are_installed_in_their_own_layer_before_the_code():
    steps = instructions()
    copy_reqs = steps.index(("COPY", "requirements.txt ."))
    install = next(i for i, (inst, args) in enumerate(steps) if inst == "RUN" and "-r requirements.txt" in args)
    first_code = min(i for i, (inst, args) in enumerate(steps) if inst == "COPY" and args != "requirements.txt .")
    assert copy_reqs < install < first_code


def test_image_and_make_run_install_the_same_runtime_requirements():
    assert shlex.split(install_step()) == ["pip", "install", "-r", "requirements.txt"]
    assert "pip install --quiet -r requirements.txt" in (REPO / "Makefile").read_text()


def test_every_copied_path_exists_and_is_not_ignored():
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] not in "#!"]
    for inst, args in instructions():
        if inst == "COPY":
            source = args.split()[0]
            assert (REPO / source).exists(), source
            assert source not in ignored
    for secret in (".env", ".git", ".venv", "tests"):
        assert secret in ignored


def test_runs_as_a_non_root_user_created_in_the_image():
    uid, gid = only("USER").split(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    created = " ".join(args for inst, args in instructions() if inst == "RUN")
    assert f"--uid {uid}" in created and f"--gid {gid}" in created


def test_state_directory_is_made_writable_for_any_uid():
    state = image_env()["KI2API_STATE_DIR"]
    created = " ".join(args for inst, args in instructions() if inst == "RUN")
    assert f"mkdir -p {state}" in created and f"chmod 1777 {state}" in created


def test_port_healthcheck_and_command():
    assert only("EXPOSE") == str(Settings().port) == image_env()["PORT"]
    assert exec_form(only("CMD")) == CMD
    check = healthcheck_command()
    assert check[:2] == ["python", "-c"] and "/health" in check[2]
    assert "--start-period" in only("HEALTHCHECK")
    assert "gunicorn -c config/gunicorn.conf.py wsgi:app" in (REPO / "Makefile").read_text()


# -- docker-compose.yml -------------------------------------------------------------------------------------------

def test_compose_publishes_on_the_host_loopback_only():
    for env in ({}, {"PORT": "9000"}):
        [port] = service(env)["ports"]
        host_ip, host_port, container_port = port.split(":")
        assert host_ip == "127.0.0.1"
        assert host_port == env.get("PORT", "8989") and container_port == only("EXPOSE")
    everything = yaml.safe_load(interpolate(COMPOSE.read_text(), {}))["services"]
    for name, svc in everything.items():  # other services (the redis profile) too
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_runs_the_image_command_with_env_file_restart_and_logs():
    svc = service()
    assert svc["command"] == exec_form(only("CMD"))
    assert svc["env_file"] == [{"path": ".env", "required": False}]
    assert svc["restart"] == "unless-stopped"
    assert svc["logging"]["driver"] == "json-file" and svc["logging"]["options"]["max-size"]
    assert "healthcheck" not in svc  # the image's HEALTHCHECK applies


def test_compose_gives_streams_longer_than_graceful_timeout(monkeypatch):
    grace = int(service()["stop_grace_period"].rstrip("s"))
    assert grace > gunicorn_setting("graceful_timeout", monkeypatch) == 120


def test_compose_user_defaults_to_the_image_user_and_follows_puid():
    assert service()["user"] == only("USER")
    assert service({"PUID": "1000", "PGID": "1000"})["user"] == "1000:1000"


def test_compose_container_paths_match_the_image():
    svc, env = service(), image_env()
    assert svc["environment"]["KIRO_TOKEN_FILE"] == env["KIRO_TOKEN_FILE"]
    assert svc["environment"]["KI2API_STATE_DIR"] == env["KI2API_STATE_DIR"]
    mounts = bind_mounts(svc)
    assert mounts[env["KI2API_STATE_DIR"]] == "ki2api-state"
    assert str(Path(env["KIRO_TOKEN_FILE"]).parent) in mounts


@pytest.mark.parametrize("host_env, expected", [
    ({"HOME": "/home/alice"}, "/home/alice/.aws/sso/cache"),  # Linux
    ({"HOME": "/Users/alice"}, "/Users/alice/.aws/sso/cache"),  # macOS
    ({"USERPROFILE": r"C:\Users\alice"}, r"C:\Users\alice/.aws/sso/cache"),  # Windows (PowerShell, cmd)
    ({"HOME": "/home/alice", "KIRO_SSO_DIR": "/srv/kiro"}, "/srv/kiro"),  # explicit
    ({"USERPROFILE": r"C:\Users\al", "KIRO_SSO_DIR": "D:/kiro/cache"}, "D:/kiro/cache"),
])
def test_compose_mounts_the_ide_token_folder_on_each_os(host_env, expected):
    token_dir = str(Path(image_env()["KIRO_TOKEN_FILE"]).parent)
    assert bind_mounts(service(host_env))[token_dir] == expected


def test_interpolation_helper_follows_compose_rules():
    assert interpolate("${A:-x}${B-y}$C$$D", {"A": "", "B": "", "C": "c"}) == "xc$D"
    assert interpolate("${A:-${B:-${C}}/z}", {"C": "q"}) == "q/z"


# -- the image's start, outside a container -----------------------------------------------------------------------

@pytest.fixture
def image_root():
    """A directory laid out like the image: <root>/app from the COPY lines, <root>/home/ki2api, state dir."""
    root = Path(tempfile.mkdtemp(prefix="ki2api-image-"))
    os.chmod(root, 0o755)  # the image user must reach it, as in the image
    workdir = root / only("WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    for inst, args in instructions():
        if inst == "COPY" and args.split()[0] != "requirements.txt":
            *sources, target = args.split()
            for source in sources:
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, workdir / target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(REPO / source, workdir / target)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def rerooted(env: dict[str, str], root: Path) -> dict[str, str]:
    return {k: str(root) + v if v.startswith(("/app", "/home/ki2api")) else v for k, v in env.items()}


def runs_as(uid: int, gid: int, executable: str, code: str = "0") -> bool:
    """True if `executable -c code` runs and succeeds as uid:gid."""
    try:
        return subprocess.run([executable, "-c", code], user=uid, group=gid, extra_groups=[], timeout=DEADLINE,
                              capture_output=True).returncode == 0
    except PermissionError:
        return False


@pytest.fixture(scope="module")
def image_python() -> Iterator[Path]:
    """The image's Python environment: a fresh venv in which only the Dockerfile's install step has run.

    Nothing of the test environment leaks in, so a runtime import that requirements.txt does not bring fails
    here as it would in the image. The interpreter is one the image's user may run: this one, or Debian's
    python3.X of the same minor version when this one lives where another uid cannot reach (pyenv under a
    0700 /root, as on the CI machine).
    """
    root = Path(tempfile.mkdtemp(prefix="ki2api-image-python-"))
    os.chmod(root, 0o755)
    python = sys.executable
    if os.geteuid() == 0 and not runs_as(*image_user(), sys.executable):
        python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        if not runs_as(*image_user(), python):
            missing(f"no Python that uid {image_user()[0]} may run: {sys.executable} is out of its reach and "
                    f"{python} is missing (apt-get install python{sys.version_info.major}.{sys.version_info.minor})")
    venv = root / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    workdir = root / only("WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    shutil.copy(REPO / "requirements.txt", workdir / "requirements.txt")  # COPY requirements.txt .
    install = shlex.split(install_step())
    install[0] = str(venv / "bin" / install[0])
    subprocess.run(install, cwd=workdir, check=True, timeout=600, capture_output=True)
    yield venv / "bin"
    shutil.rmtree(root, ignore_errors=True)


def install_step() -> str:
    """The Dockerfile's dependency install: its one RUN line that installs requirements.txt."""
    [step] = [args for inst, args in instructions() if inst == "RUN" and "-r requirements.txt" in args]
    return step


def image_user() -> tuple[int, int]:
    uid, gid = (int(x) for x in only("USER").split(":"))
    return uid, gid


def start_image(root: Path, env: dict[str, str], as_user: tuple[int, int] | None) -> subprocess.Popen:
    """The Dockerfile's CMD, in its WORKDIR, with `env` (PATH included), as `as_user` (uid, gid) if given."""
    full = {"HOME": str(root / "home" / "ki2api"), **env}
    log = open(root / "container.log", "wb")
    kwargs = {"user": as_user[0], "group": as_user[1], "extra_groups": []} if as_user else {}
    return subprocess.Popen(exec_form(only("CMD")), cwd=root / only("WORKDIR").lstrip("/"), env=full,
                            stdout=log, stderr=subprocess.STDOUT, **kwargs)


def run_healthcheck(env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, resolved on the image's PATH; its exit status."""
    command = healthcheck_command()
    command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]
    return subprocess.run(command, env=env, timeout=DEADLINE, capture_output=True).returncode


def wait_healthy(proc: subprocess.Popen, env: dict[str, str], root: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while run_healthcheck(env) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError((root / "container.log").read_text())
        time.sleep(0.1)


@pytest.mark.integration
@pytest.mark.parametrize("owner_matches", [True, False])
def test_the_image_command_starts_serves_and_writes_tokens_back(image_root, image_python, fake_upstream,
                                                                owner_matches):
    """Run as the image's USER with the token folder owned by it (PUID set right) or by someone else."""
    uid, gid = image_user()
    as_user = (uid, gid) if os.geteuid() == 0 else None
    if as_user is None and not owner_matches:
        missing("needs root to give the token folder another owner (CI runs as root)")
    env = rerooted({**image_env(), **{k: str(v) for k, v in service()["environment"].items()}}, image_root)
    port = free_port()
    env.update(PATH=f"{image_python}:/usr/bin:/bin",
               HOST="127.0.0.1", PORT=str(port), API_KEY=KEY, KI2API_DOTENV=os.devnull,
               KIRO_API_BASE=fake_upstream.url, KIRO_REFRESH_URL=fake_upstream.refresh_url,
               KIRO_OIDC_URL=fake_upstream.oidc_url)
    token_file = write_token_file(Path(env["KIRO_TOKEN_FILE"]), expires_in=-60)  # expired: first call refreshes
    state = Path(env["KI2API_STATE_DIR"])
    state.mkdir(parents=True)
    os.chmod(state, 0o1777)
    if as_user:
        owner = (uid, gid) if owner_matches else (0, 0)
        for path in (token_file.parent, token_file):
            os.chown(path, *owner)
        os.chmod(token_file.parent, 0o755)
        os.chmod(token_file, 0o644 if not owner_matches else 0o600)
    fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAtest-refresh-token-0001")
    proc = start_image(image_root, env, as_user)
    try:
        wait_healthy(proc, env, image_root)
        answer = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=DEADLINE,
                               headers={"Authorization": f"Bearer {KEY}"},
                               json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200, (image_root / "container.log").read_text()[-3000:]
        saved = json.loads(token_file.read_text())
        if owner_matches:  # the IDE's file now holds the rotated tokens
            assert saved["refreshToken"] == "aorAAAAAfake-refresh-1"
        else:  # not writable for the container user: the IDE's file is left alone (docs/getting-started.md explains PUID)
            assert saved["refreshToken"] == "aorAAAAAtest-refresh-token-0001"
        [metrics] = list(state.glob("prometheus-*"))
        if as_user:
            assert metrics.stat().st_uid == uid
    finally:
        proc.send_signal(getattr(signal, only("STOPSIGNAL")))
        assert proc.wait(timeout=DEADLINE) == 0
    assert not list(state.glob("prometheus-*"))  # removed at a clean stop
    assert run_healthcheck(env) != 0  # and the health check notices when nothing answers
