"""The account pool for real: gunicorn with gevent workers, the fake Kiro with several accounts, a real
redis-server shared by separate gunicorn instances (each with its own token files and state directory, as
on separate machines), driven by the openai SDK."""
from __future__ import annotations

import json
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests

from tests.helpers.credentials import KEY, REFRESH, write_token_file
from tests.helpers.accounts import QUOTA, THROTTLED, fake_accounts, usage, write_token_dir
from tests.helpers.nginx import Nginx
from tests.helpers.waiting import wait_for

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
    # Every worker trusts its view of the shared state files for at most 1 s: past that, neither asks a again.
    wait_for(lambda: row(health(gateway), "a")["cooldown"]["seconds_left"] <= 298, "the rest to be 2 s old")
    tried = served_by(fake_upstream, "a")
    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(lambda i: ask(gateway), range(30))) == {"Hello! I am the fake Kiro."}
    assert served_by(fake_upstream, "a") == tried


def test_quota_exhaustion_rests_until_the_reset_date(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA, "usage": usage(50, 50, 12)}))
    gateway = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "tokens"), KIRO_USAGE_INTERVAL="1")
    spent = wait_for(lambda: row(health(gateway), "a")["usage"], "a's usage limits from the background poll")
    assert spent["remaining"] == 0 and spent["limit"] == 50
    ask_until_hit(gateway, fake_upstream, "a")
    a = wait_for(lambda: (r := row(health(gateway), "a"))["state"] == "cooling_down" and r, "a resting")
    assert a["cooldown"]["kind"] == "quota" and a["cooldown"]["until"] == a["usage"]["next_reset"]
    b = row(health(gateway), "b")["usage"]  # Kiro's figure, less the answers charged since its last poll
    assert b["remaining"] == pytest.approx(41.32 - b.get("spent_since_fetch", 0)) and b["limit"] == 50
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


def with_usage(report: dict[str, Any]) -> dict[str, Any] | None:
    """The report if every account's usage limits are in it, else None."""
    return report if all(r["usage"] for r in report["accounts"]) else None


def test_usage_limits_are_polled_once_per_account_for_all_replicas_not_per_request(start_gateway, fake_upstream,
                                                                                   tmp_path, redis_server):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"usage": usage(1000, 250, 20)}))
    replicas = [start_gateway(workers=2, **machine(tmp_path, name, redis_server.url, KIRO_USAGE_INTERVAL="900"))
                for name in ("one", "two")]
    with ThreadPoolExecutor(max_workers=8) as pool:  # every worker of both replicas starts its poller
        assert set(pool.map(lambda i: ask(replicas[i % 2]), range(40))) == {"Hello! I am the fake Kiro."}
    for gateway in replicas:
        report = wait_for(lambda: with_usage(health(gateway)), "both accounts' usage limits on /health")
        for name, fetched in (("a", 750), ("b", 41.32)):  # Kiro's figure, less what answers cost since the poll
            spent = row(report, name)["usage"]
            assert spent["remaining"] == pytest.approx(fetched - spent.get("spent_since_fetch", 0))
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda i: ask(replicas[i % 2]), range(40))) == {"Hello! I am the fake Kiro."}
    stats = fake_upstream.stats()["accounts"]
    # 80 requests, 4 workers on 2 replicas: one usage call per account, the slow schedule's next is in 15 min
    assert (stats["a"]["usage_calls"], stats["b"]["usage_calls"]) == (1, 1)
    assert stats["a"]["chat_requests"] + stats["b"]["chat_requests"] == 80


def test_two_replicas_behind_nginx_share_one_refresh_and_the_cooldowns(start_gateway, fake_upstream, tmp_path,
                                                                       redis_server):
    """The documented deployment (docs/deployment.md): nginx balancing two replicas (own token copies and state dirs) sharing Redis."""
    write_token_dir(tmp_path / "tokens", "a", "b", expired=("a",))
    fake_upstream.reset(accounts=fake_accounts("a", "b", b={"default": {**THROTTLED,
                                                                        "headers": {"Retry-After": "300"}}}))
    one, two = (start_gateway(workers=2, **machine(tmp_path, name, redis_server.url)) for name in ("one", "two"))
    proxy = Nginx(one.port)
    site = proxy.prefix / "ki2api.conf"
    site.write_text(site.read_text().replace(f"server 127.0.0.1:{one.port};",
                                             f"server 127.0.0.1:{one.port}; server 127.0.0.1:{two.port};"))
    proxy.start()
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda i: ask(proxy), range(60)))
    finally:
        proxy.stop()
    assert answers == ["Hello! I am the fake Kiro."] * 60
    for gateway in (one, two):  # nginx spread the requests: each replica served some
        wait_for(lambda: "path=/v1/chat/completions" in gateway.log_text(), "requests on each replica")
    stats = fake_upstream.stats()["accounts"]
    assert stats["a"]["refresh_calls"] == 1  # a's expired token: refreshed once for both replicas
    assert stats["a"]["chat_requests"] == 60 and stats["b"]["chat_requests"] >= 1  # b's 429s failed over to a
    for gateway in (one, two):
        b = wait_for(lambda: (r := row(health(gateway), "b"))["state"] == "cooling_down" and r, "b resting")
        assert b["cooldown"]["kind"] == "throttled" and row(health(gateway), "a")["state"] == "healthy"


# -- a client hanging up is not the account's fault -----------------------------------------------------------

HELD = {"texts": ["first ", "second"], "hold_after": 2}  # then silence: the model "thinks" until released
STREAMS = {
    "openai": ("/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": MESSAGES, "stream": True}),
    "anthropic": ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MESSAGES,
                                   "stream": True}),
}


def open_stream(gateway, path: str, body: dict[str, Any]) -> socket.socket:
    """POST a streamed request on a raw socket and read until the first text has arrived."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    received = b""
    while b"first " not in received:
        piece = sock.recv(65536)
        assert piece, f"the stream ended before its first text: {received!r}"
        received += piece
    assert received.startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.parametrize("api", sorted(STREAMS))
def test_a_client_hanging_up_mid_stream_leaves_the_account_healthy(start_gateway, fake_upstream, tmp_path, api):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    gateway = start_gateway(workers=1, KIRO_TOKEN_DIR=str(tmp_path / "tokens"))
    fake_upstream.set_default(HELD)
    sock = open_stream(gateway, *STREAMS[api])
    assert fake_upstream.stats()["open_streams"] == 1
    sock.close()  # while the upstream is silent: only ki2api's disconnect watch can end the upstream call
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, "ki2api to hang up on the upstream")
    assert fake_upstream.release() == 0  # nothing was still held: ki2api, not the fake, ended it
    wait_for(lambda: "client disconnected" in gateway.log_text(), "the disconnect in the log")
    wait_for(lambda: f"path={STREAMS[api][0]}" in gateway.log_text(), "the request's log line")
    report = health(gateway)
    assert [(r["name"], r["state"], r["errors"], r["last_error"]) for r in report["accounts"]] == [
        ("a", "healthy", 0, None), ("b", "healthy", 0, None)]
    assert sum(r["requests"] for r in report["accounts"]) == 1 and report["status"] == "ok"
    fake_upstream.set_default({})
    assert ask(gateway) == "Hello! I am the fake Kiro."  # the worker and both accounts serve on


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
    for gateway in (one, two):  # every worker that saw the outage finds Redis back with its background probe
        wait_for(lambda: gateway.log_text().count("reachable again") == gateway.log_text().count("is unreachable"),
                 "every worker of the replica to reconnect")
        assert health(gateway)["shared_state"]["connected"] is True
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


def test_a_quota_rest_ended_by_another_replicas_usage_poll_ends_on_every_replica(start_gateway, fake_upstream,
                                                                                 tmp_path, redis_server):
    """Replica one rests a on a 402 until its reset date; replica two's usage poll sees credits again and
    ends the rest: replica one must use a again (its own local copy of the rest must not keep it resting)."""
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA, "usage": usage(50, 50, 12)}))
    one = start_gateway(workers=1, **machine(tmp_path, "one", redis_server.url))
    ask_until_hit(one, fake_upstream, "a")
    wait_for(lambda: row(health(one), "a")["state"] == "cooling_down", "a resting on replica one")
    stats = fake_upstream.stats()["accounts"]
    fake_upstream.reset(accounts=[  # a has credits again, and answers
        {"name": n, "access_tokens": stats[n]["access_tokens"], "refresh_token": stats[n]["refresh_token"],
         **({"usage": usage(50, 10, 12)} if n == "a" else {})} for n in ("a", "b")])
    two = start_gateway(workers=1, **machine(tmp_path, "two", redis_server.url, KIRO_USAGE_INTERVAL="1"))
    wait_for(lambda: row(health(two), "a")["usage"] and row(health(two), "a")["usage"]["remaining"] == 40,
             "replica two's usage poll")
    wait_for(lambda: row(health(one), "a")["state"] == "healthy", "the end of a's rest on replica one")
    ask_until_hit(one, fake_upstream, "a")


def test_a_redis_that_stops_answering_costs_requests_one_timeout_only(start_gateway, fake_upstream, tmp_path):
    """Redis accepts connections and never answers (a dead route, not a refused port): the request that finds
    out waits for the socket timeout; every later one is served from the local view at once, also after
    the 2 s retry interval, while a background probe keeps asking."""
    from tests.helpers.redis_proxy import RedisProxy

    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    blackhole = RedisProxy(mode="blackhole")
    try:
        gateway = start_gateway(workers=1, **machine(tmp_path, "one", blackhole.url))
        assert ask(gateway) == "Hello! I am the fake Kiro."  # this one pays the timeout
        probed = blackhole.commands.count("HELLO")  # one per new connection (redis-py's handshake)
        slow, deadline = [], time.monotonic() + 60
        while blackhole.commands.count("HELLO") < probed + 3:  # three probe attempts: 3 retry intervals at least
            assert time.monotonic() < deadline, "the background probe never asked Redis"
            started = time.monotonic()
            assert ask(gateway) == "Hello! I am the fake Kiro."
            if time.monotonic() - started >= 1.5:  # the bug: about 4 s (two attempts of 2 s) every interval
                slow.append(round(time.monotonic() - started, 1))
            assert len(slow) < 3, f"requests keep waiting for Redis: {slow}"
        assert slow == []
        report = health(gateway)
        assert report["shared_state"]["connected"] is False and report["status"] == "degraded"
    finally:
        blackhole.close()
