"""Parsing the Dockerfile and docker-compose.yml as Docker would, for tests/test_docker_config.py (no engine)."""
from __future__ import annotations

import json
import re
import shlex

import yaml

from tests.helpers.gateway import REPO

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, joined = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        joined += raw.rstrip()[:-1] + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\"):
            lines.append(joined)
            joined = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in lines]


def only(name: str) -> str:
    [value] = [args for inst, args in instructions() if inst == name]
    return value


def image_env() -> dict[str, str]:
    env = {}
    for inst, args in instructions():
        if inst == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    return env


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list; shell form is not used in this Dockerfile."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def healthcheck_command() -> list[str]:
    return exec_form(only("HEALTHCHECK").split("CMD", 1)[1].strip())


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default} and ${VAR-default}, defaults nested."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, j = 1, i + 2
            while depth:
                if text.startswith("${", j):
                    depth, j = depth + 1, j + 2
                else:
                    depth, j = depth - (text[j] == "}"), j + 1
            body = text[i + 2:j - 1]
            name, op, default = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:-|-)?(.*)", body, re.S).groups()
            value = env.get(name)
            if op == ":-" and not value or op == "-" and value is None:
                value = interpolate(default, env)
            out.append(value or "")
            i = j
        elif m := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", text[i:]):
            out.append(env.get(m.group(1), ""))
            i += m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def service(env: dict[str, str] | None = None) -> dict:
    """The ki2api service as compose would see it with `env` as the shell/.env variables."""
    text = interpolate(COMPOSE.read_text(), env or {})
    return yaml.safe_load(text)["services"]["ki2api"]


def bind_mounts(svc: dict) -> dict[str, str]:
    """{container path: host path or volume name} of short-syntax volumes (Windows drive letters allowed)."""
    mounts = {}
    for entry in svc["volumes"]:
        cut = entry.rindex(":/")
        mounts[entry[cut + 1:]] = entry[:cut]
    return mounts
