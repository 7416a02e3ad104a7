"""The account pool for real: gunicorn with gevent workers, the fake Kiro with several accounts, a real
redis-server shared by separate gunicorn instances (each with its own token files and state directory, as
on separate machines), driven by the openai SDK."""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import openai
import pytest
import requests

from tests.conftest import KEY, REFRESH, write_token_file
from tests.helpers.accounts import QUOTA, THROTTLED, fake_accounts, usage, write_token_dir

pytestmark = pytest.mark.integration
MESSAGES = [{"role": "user", "content": "hi"}]


def sdk(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def ask(gateway) -> str:
    """One completion through the SDK; its text."""
    result = sdk(gateway).chat.completions.create(model="claude-sonnet-4-5", messages=MESSAGES)
    return result.choices[0].message.content


def health(gateway) -> dict[str, Any]:
    response = requests.get(f"{gateway.url}/health", timeout=10)
    assert response.status_code == 200
    return response.json()


def row(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in report["accounts"] if r["name"] == name)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def served_by(fake, name: str) -> int:
    return fake.stats()["accounts"][name]["chat_requests"]


def ask_until_hit(gateway, fake, name: str, limit: int = 60) -> int:
    """Ask until account `name` has been asked upstream; every answer must be the fake's text."""
    asked = 0
    while served_by(fake, name) == 0 and asked < limit:
        assert ask(gateway) == "Hello! I am the fake Kiro."
        asked += 1
    assert served_by(fake, name) >= 1, f"account {name} was never picked"
    return asked


def machine(tmp_path, name: str, redis_url: str | None = None, **env: str) -> dict[str, str]:
    """The environment of one replica: its own copy of the token directory and its own state directory."""
    directory = tmp_path / name / "tokens"
    shutil.copytree(tmp_path / "tokens", directory)
    result = {"KIRO_TOKEN_DIR": str(directory), "KI2API_STATE_DIR": str(tmp_path / name / "state"), **env}
    if redis_url:
        result["REDIS_URL"] = redis_url
    return result


# -- two replicas sharing Redis -----------------------------------------------------------------------------------

def test_two_replicas_refresh_one_expired_account_once_for_100_concurrent_requests(start_gateway, fake_upstream,
                                                                                   tmp_path, redis_server):
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH, refresh_delay=0.3)
    gateways = []
    for name in ("one", "two"):
        token_file = write_token_file(tmp_path / name / "kiro-auth-token.json", expires_in=-120)
        gateways.append(start_gateway(workers=2, KIRO_TOKEN_FILE=str(token_file), REDIS_URL=redis_server.url,
                                      KI2API_STATE_DIR=str(tmp_path / name / "state")))
    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda i: ask(gateways[i % 2]), range(100)))
    assert answers == ["Hello! I am the fake Kiro."] * 100
    assert fake_upstream.stats()["refresh_calls"] == 1
    for gateway in gateways:
        report = health(gateway)
        assert report["shared_state"]["backend"] == "redis" and report["shared_state"]["connected"] is True
        assert row(report, "default")["state"] == "healthy"
        assert row(report, "default")["expires_in_seconds"] > 3500
    wait_for(lambda: row(health(gateways[0]), "default")["requests"] == 100, "the count over both replicas")


def test_a_throttled_account_fails_over_and_rests(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b")
    throttled = {**THROTTLED, "headers": {"Retry-After": "300"}}
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": throttled}))
    gateway = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "tokens"))
    asked = ask_until_hit(gateway, fake_upstream, "a")
    for _ in range(10):
        assert ask(gateway) == "Hello! I am the fake Kiro."
    assert served_by(fake_upstream, "a") <= 2  # at most once per worker, then it rests
    assert served_by(fake_upstream, "b") == asked + 10
    a = wait_for(lambda: (r := row(health(gateway), "a"))["state"] == "cooling_down" and r, "a on cooldown")
    assert a["cooldown"]["kind"] == "throttled" and 250 < a["cooldown"]["seconds_left"] <= 300
    assert row(health(gateway), "b")["state"] == "healthy"


def test_quota_exhaustion_rests_until_the_reset_date(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA, "usage": usage(50, 50, 12)}))
    gateway = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "tokens"), KIRO_USAGE_INTERVAL="1")
    spent = wait_for(lambda: row(health(gateway), "a")["usage"], "a's usage limits from the background poll")
    assert spent["remaining"] == 0 and spent["limit"] == 50
    ask_until_hit(gateway, fake_upstream, "a")
    a = wait_for(lambda: (r := row(health(gateway), "a"))["state"] == "cooling_down" and r, "a resting")
    assert a["cooldown"]["kind"] == "quota" and a["cooldown"]["until"] == a["usage"]["next_reset"]
    assert row(health(gateway), "b")["usage"]["remaining"] == pytest.approx(41.32)
    assert fake_upstream.stats()["usage_calls"] >= 2


def test_a_dead_refresh_token_disables_its_account(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b", dead=("a",))
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    gateway = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "tokens"))
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: ask(gateway), range(30)))
    assert set(answers) == {"Hello! I am the fake Kiro."}
    assert fake_upstream.stats()["refresh_calls"] == 1  # one worker tried; the other read the verdict
    a = wait_for(lambda: (r := row(health(gateway), "a"))["state"] == "disabled" and r, "a disabled")
    assert "no longer valid" in a["disabled"]["why"] and "log in again" in a["disabled"]["why"]


def test_every_account_unavailable_says_when_to_retry(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": {**THROTTLED, "headers": {"Retry-After": "40"}}},
                                               b={"default": {**QUOTA, "headers": {"Retry-After": "900"}}}))
    gateway = start_gateway(workers=1, KIRO_TOKEN_DIR=str(tmp_path / "tokens"))
    with pytest.raises(openai.RateLimitError) as info:
        ask(gateway)
    assert 35 <= int(info.value.response.headers["Retry-After"]) <= 40
    assert "All 2 Kiro accounts are unavailable" in info.value.message
    asked = fake_upstream.stats()["chat_requests"]
    with pytest.raises(openai.RateLimitError):
        ask(gateway)
    assert fake_upstream.stats()["chat_requests"] == asked  # nobody bothers Kiro while all rest
    report = health(gateway)
    assert report["status"] == "degraded" and report["pool"]["available"] == 0


def test_every_login_dead_is_a_503(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b", dead=("a", "b"))
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    gateway = start_gateway(workers=1, KIRO_TOKEN_DIR=str(tmp_path / "tokens"))
    with pytest.raises(openai.InternalServerError) as info:
        ask(gateway)
    assert info.value.status_code == 503 and "No Kiro account can serve" in info.value.message


# -- Redis going away and coming back ------------------------------------------------------------------------------

def test_redis_outage_keeps_serving_and_sharing_resumes(start_gateway, fake_upstream, tmp_path, redis_server):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    one, two = (start_gateway(workers=2, **machine(tmp_path, name, redis_server.url)) for name in ("one", "two"))
    for gateway in (one, two):
        assert [ask(gateway) for _ in range(4)] == ["Hello! I am the fake Kiro."] * 4

    redis_server.stop()
    for gateway in (one, two):
        assert [ask(gateway) for _ in range(6)] == ["Hello! I am the fake Kiro."] * 6
        report = health(gateway)
        assert report["status"] == "degraded" and report["shared_state"]["connected"] is False
        assert any("unreachable" in warning for warning in report["warnings"])
    assert "Redis at redis://127.0.0.1" in one.log_text() and "unreachable" in one.log_text()

    redis_server.start()  # empty: the shared state must be rebuilt from what the replicas do next
    for gateway in (one, two):
        wait_for(lambda: health(gateway)["shared_state"]["connected"], "the replica to reconnect")
    stats = fake_upstream.stats()["accounts"]
    fake_upstream.reset(accounts=[  # a's access token is revoked (it must be refreshed); b gets throttled
        {"name": "a", "access_tokens": [], "refresh_token": stats["a"]["refresh_token"]},
        {"name": "b", "access_tokens": stats["b"]["access_tokens"], "refresh_token": stats["b"]["refresh_token"],
         "default": {**THROTTLED, "headers": {"Retry-After": "300"}}}])
    ask_until_hit(one, fake_upstream, "b")  # one rests b ...
    wait_for(lambda: row(health(two), "b")["state"] == "cooling_down", "b's cooldown to reach replica two")
    with ThreadPoolExecutor(max_workers=20) as pool:  # ... and both now use a, whose token one or two refreshes
        answers = list(pool.map(lambda i: ask((one, two)[i % 2]), range(40)))
    assert answers == ["Hello! I am the fake Kiro."] * 40
    assert fake_upstream.stats()["accounts"]["a"]["refresh_calls"] == 1  # once, for both replicas
    assert "reachable again" in two.log_text()
