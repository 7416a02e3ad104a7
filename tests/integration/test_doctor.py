"""`python -m ki2api doctor` beside a running ki2api (gunicorn, two gevent workers) that shares its login and
state through Redis: every check passes, its refresh spends the rotating refresh token once, and the server keeps
serving with the new login."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import openai
import pytest

from tests.fakes.kiro.process import REPO
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "KI2API_", "REDIS_"))}
    environ.update(env, KI2API_DOTENV=os.devnull, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ki2api", "doctor", *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_doctor_beside_a_running_server_with_redis(start_gateway, gateway_env, redis_server, fake_upstream,
                                                   token_file):
    gateway = start_gateway(workers=2, REDIS_URL=redis_server.url)
    env = {**gateway_env, "REDIS_URL": redis_server.url, "HOST": "127.0.0.1", "PORT": str(gateway.port)}
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    assert sdk.chat.completions.create(model="claude-sonnet-4.5", messages=[{"role": "user", "content": "hi"}]
                                       ).choices[0].message.content

    result = doctor(env, "--json", "--refresh", "--chat")
    checks = {f"{c['check']} {c['subject']}" if c["subject"] else c["check"]: c for c in json.loads(result.stdout)}
    assert result.returncode == 0, result.stdout + result.stderr
    assert checks["shared_state redis"]["detail"].startswith(f"Redis at {redis_server.url} answers and takes writes")
    assert checks[f"port 127.0.0.1:{gateway.port}"]["detail"].startswith("ki2api answers on")
    assert checks["refresh default"]["ok"] and not checks["refresh default"]["skipped"]
    assert checks["chat default"]["ok"] and not checks["chat default"]["skipped"]
    stats = fake_upstream.stats()
    assert stats["refresh_calls"] == 1  # one rotation: the old access and refresh tokens are dead upstream now
    assert json.loads(token_file.read_text())["refreshToken"] == stats["refresh_token"]

    for _ in range(4):  # the workers serve with the login doctor refreshed, without refreshing again
        answer = sdk.chat.completions.create(model="claude-sonnet-4.5", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
    assert fake_upstream.stats()["refresh_calls"] == 1
