"""The account pool through Flask's test client against the fake Kiro (real HTTP): failover, cooldowns,
quota, dead logins, all accounts down, /health per account."""
from __future__ import annotations

import json
import random
import threading
from dataclasses import replace

import pytest

from ki2api.app import create_app
from ki2api.errors import UpstreamError
from ki2api.translate.history import Conversation, Turn, build_payload
from tests.helpers.credentials import write_token_file
from tests.helpers.waiting import wait_for
from tests.helpers.accounts import (CAPACITY, QUOTA, THROTTLED, access, fake_accounts, refresh, usage,
                                    write_token_dir)

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def pool_dir(tmp_path):
    return tmp_path / "pool"


def start(settings, pool_dir, *names, **kwargs):
    """An app serving from a token directory with these accounts, and its test client."""
    write_token_dir(pool_dir, *names, **kwargs)
    app = create_app(replace(settings, token_dir=str(pool_dir)))
    return app, app.test_client()


def health(client) -> dict:
    response = client.get("/health")
    assert response.status_code == 200
    return response.get_json()


def account(report: dict, name: str) -> dict:
    return next(row for row in report["accounts"] if row["name"] == name)


def served_by(fake, name: str) -> int:
    return fake.stats()["accounts"][name]["chat_requests"]


def ask_until_hit(client, auth, fake, name: str, limit: int = 60) -> list[int]:
    """Send requests until one reached account `name` upstream (random tie-breaks decide who is first)."""
    statuses = []
    while served_by(fake, name) == 0 and len(statuses) < limit:
        statuses.append(client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code)
    assert served_by(fake, name) >= 1, "the account was never picked"
    return statuses


def test_a_throttled_account_rests_and_requests_fail_over(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": {**THROTTLED,
                                                                         "headers": {"Retry-After": "120"}}}))
    _, client = start(settings, pool_dir, "a", "b")
    statuses = ask_until_hit(client, auth, fake_upstream, "a")
    statuses += [client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code for _ in range(10)]
    assert statuses == [200] * len(statuses)
    assert served_by(fake_upstream, "a") == 1  # rested after its 429: never asked again
    assert served_by(fake_upstream, "b") == len(statuses)
    report = health(client)
    a, b = account(report, "a"), account(report, "b")
    assert a["state"] == "cooling_down" and b["state"] == "healthy"
    assert a["cooldown"]["kind"] == "throttled" and 90 <= a["cooldown"]["seconds_left"] <= 120
    assert "Too many requests" in a["cooldown"]["message"]
    assert (a["requests"], a["errors"], b["requests"], b["errors"]) == (0, 1, len(statuses), 0)
    assert a["last_error"]["status"] == 429
    assert report["pool"] == {"size": 2, "available": 1, "policy": report["pool"]["policy"]}
    assert report["status"] == "ok" and report["shared_state"]["backend"] == "files"


def test_capacity_errors_fail_over_and_rest_briefly(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": CAPACITY}))
    _, client = start(settings, pool_dir, "a", "b")
    assert set(ask_until_hit(client, auth, fake_upstream, "a")) == {200}
    cooldown = account(health(client), "a")["cooldown"]
    assert cooldown["kind"] == "capacity" and 1 <= cooldown["seconds_left"] <= 5  # base 5 s, half to full


def test_quota_rests_the_account_until_the_reset_date_from_usage_limits(settings, pool_dir, fake_upstream, auth):
    spent = usage(limit=50, used=50, reset_in_days=9)
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA, "usage": spent},
                                               b={"usage": usage(limit=1000, used=12.5)}))
    app, client = start(settings, pool_dir, "a", "b")
    assert app.extensions["ki2api"].usage.poll_once() == 2
    before = health(client)
    assert account(before, "a")["usage"]["remaining"] == 0
    assert account(before, "b")["usage"] == {**account(before, "b")["usage"], "subscription": "KIRO PRO",
                                             "limit": 1000, "used": 12.5, "remaining": 987.5}
    assert set(ask_until_hit(client, auth, fake_upstream, "a")) == {200}
    a = account(health(client), "a")
    assert a["state"] == "cooling_down" and a["cooldown"]["kind"] == "quota"
    assert a["cooldown"]["until"] == a["usage"]["next_reset"]  # until the reset date, not a guess
    assert 9 * 86400 - 60 <= a["cooldown"]["seconds_left"] <= 9 * 86400


def test_a_quota_refusal_uses_the_usage_limits_another_worker_has_just_fetched(settings, pool_dir, fake_upstream,
                                                                                 auth):
    fake_upstream.reset(accounts=fake_accounts("a", a={"default": QUOTA, "usage": usage(50, 50, 9)}))
    write_token_dir(pool_dir, "a")
    one, two = (create_app(replace(settings, token_dir=str(pool_dir))) for _ in range(2))  # two workers
    one.extensions["ki2api"].pool.states()  # worker one has just read the shared state (trusted for 1 s) ...
    assert two.extensions["ki2api"].usage.poll_once() == 1  # ... when worker two records a's usage limits
    client = one.test_client()
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 429
    a = account(health(client), "a")
    assert a["cooldown"]["kind"] == "quota" and a["cooldown"]["until"] == a["usage"]["next_reset"]


def test_quota_without_usage_limits_rests_the_long_default(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA}))
    _, client = start(replace(settings, quota_cooldown=7200), pool_dir, "a", "b")
    ask_until_hit(client, auth, fake_upstream, "a")
    assert 7190 <= account(health(client), "a")["cooldown"]["seconds_left"] <= 7200


def test_usage_showing_credits_again_ends_a_quota_rest(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": QUOTA, "usage": usage(50, 10)}))
    app, client = start(settings, pool_dir, "a", "b")
    ask_until_hit(client, auth, fake_upstream, "a")
    assert account(health(client), "a")["state"] == "cooling_down"
    assert app.extensions["ki2api"].usage.poll_once() == 2  # a shows 40 credits left: a top-up or a reset
    assert account(health(client), "a")["state"] == "healthy"


def test_a_dead_refresh_token_disables_the_account_and_says_so(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    _, client = start(settings, pool_dir, "a", "b", dead=("a",))
    statuses = [client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code for _ in range(12)]
    assert statuses == [200] * 12
    assert fake_upstream.stats()["refresh_calls"] == 1  # tried once, then never again
    a = account(health(client), "a")
    assert a["state"] == "disabled"
    assert "no longer valid" in a["disabled"]["why"] and "log in again" in a["disabled"]["why"]
    assert a["credential"]["needs_login"] is True
    # The person logs in again: the account is back without a restart.
    write_token_file(pool_dir / "a.json", access=access("a"), refresh=refresh("a"), expires_in=-60)
    assert account(health(client), "a")["state"] == "healthy"
    ask_until_hit(client, auth, fake_upstream, "a")
    assert account(health(client), "a")["state"] == "healthy"


def test_every_account_resting_is_a_429_saying_when_to_retry(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": {**THROTTLED, "headers": {"Retry-After": "30"}}},
                                               b={"default": {**THROTTLED, "headers": {"Retry-After": "90"}}}))
    _, client = start(settings, pool_dir, "a", "b")
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 429
    assert 25 <= int(response.headers["Retry-After"]) <= 30
    error = response.get_json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "All 2 Kiro accounts are unavailable" in error["message"] and "a: resting until" in error["message"]
    asked = fake_upstream.stats()["chat_requests"]
    again = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert again.status_code == 429 and 15 <= int(again.headers["Retry-After"]) <= 30
    assert fake_upstream.stats()["chat_requests"] == asked  # answered without bothering Kiro
    report = health(client)
    assert report["status"] == "degraded" and report["pool"]["available"] == 0


def test_every_account_dead_is_a_503_naming_them(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    _, client = start(settings, pool_dir, "a", "b", dead=("a", "b"))
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 503
    message = response.get_json()["error"]["message"]
    assert "a: Kiro's refresh token is no longer valid" in message and "b: Kiro's refresh token" in message
    assert "Retry-After" not in response.headers  # only a new login helps, not waiting


def test_one_account_keeps_the_upstream_errors_and_rests(client, auth, fake_upstream):
    fake_upstream.script({**THROTTLED, "headers": {"Retry-After": "7"}})
    first = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert "Too many requests" in first.get_json()["error"]["message"]
    second = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert second.status_code == 429 and int(second.headers["Retry-After"]) in (6, 7)
    assert "resting" in second.get_json()["error"]["message"]
    assert fake_upstream.stats()["chat_requests"] == 1
    assert account(health(client), "default")["state"] == "cooling_down"


def test_one_dead_login_is_still_a_401_telling_to_log_in(client, auth, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_token="aorAAAAAanother-login")
    for _ in range(3):
        response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert response.status_code == 401 and "log in again" in response.get_json()["error"]["message"]
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert health(client)["credential"]["needs_login"] is True


FIRST_FRAME_THROTTLE = {"events": [{"exception": "ThrottlingException", "message": "slow down"}]}


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", CHAT), ("/v1/chat/completions", {**CHAT, "stream": True}),
    ("/v1/messages", {**CHAT, "max_tokens": 50, "stream": True})], ids=["openai", "openai-stream", "anthropic-stream"])
def test_a_throttle_as_the_streams_first_frame_fails_over_and_rests_the_account(settings, pool_dir, fake_upstream,
                                                                                  auth, path, body):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": FIRST_FRAME_THROTTLE}))
    _, client = start(settings, pool_dir, "a", "b")
    replies = []  # (status, body), each read at once (a streamed test response holds its request context)
    while served_by(fake_upstream, "a") == 0 and len(replies) < 60:
        reply = client.post(path, json=body, headers=auth)
        replies.append((reply.status_code, reply.get_data(as_text=True)))
    assert served_by(fake_upstream, "a") == 1  # nothing had reached the client: b answered instead
    assert [status for status, _ in replies] == [200] * len(replies)
    for _, body in replies:  # b's whole answer, no trace of a's refusal
        assert " the fake" in body and " Kiro." in body and "slow down" not in body and "error" not in body
    assert served_by(fake_upstream, "b") == len(replies)
    a, b = account(health(client), "a"), account(health(client), "b")
    assert a["state"] == "cooling_down" and a["cooldown"]["kind"] == "throttled" and a["errors"] == 1
    assert (b["state"], b["errors"], b["requests"]) == ("healthy", 0, len(replies))


def test_a_first_frame_throttle_on_the_only_account_is_a_429(client, auth, fake_upstream):
    fake_upstream.script(FIRST_FRAME_THROTTLE)
    for stream in (False, True):
        response = client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=auth)
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
        assert response.get_json()["error"]["type"] == "rate_limit_error"
    assert fake_upstream.stats()["chat_requests"] == 1  # the second found the account resting


def test_least_in_flight_then_weights(settings, tmp_path, fake_upstream, auth):
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps([{"name": n, "refreshToken": refresh(n), "accessToken": access(n),
                                          "expiresAt": "2999-01-01T00:00:00.000Z", "weight": w}
                                         for n, w in (("a", 3), ("b", 1))]))
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    app = create_app(replace(settings, accounts_file=str(accounts_file)))
    pool = app.extensions["ki2api"].pool
    held = [pool.acquire() for _ in range(8)]  # always the lowest in-flight per weight: ends at a 6, b 2
    names = [lease.account.name for lease in held]
    assert names.count("a") == 6 and names.count("b") == 2
    for lease in held:
        lease.release()
    assert [a.in_flight for a in pool.accounts] == [0, 0]
    pool._rng = random.Random(4)
    client = app.test_client()
    for _ in range(200):
        assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    share = served_by(fake_upstream, "a") / 200
    assert 0.65 <= share <= 0.85  # 3:1 when idle: ties go to a random account in proportion to weight


def test_disabled_in_config_is_never_used(settings, tmp_path, fake_upstream, auth):
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps([{"name": "a", "refreshToken": refresh("a"), "enabled": False},
                                         {"name": "b", "refreshToken": refresh("b")}]))
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    client = create_app(replace(settings, accounts_file=str(accounts_file))).test_client()
    for _ in range(5):
        assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert served_by(fake_upstream, "a") == 0 and served_by(fake_upstream, "b") == 5
    a = account(health(client), "a")
    assert a["state"] == "off" and "enabled: false" in a["disabled"]["why"]


def test_inline_accounts_refresh_into_the_state_dir_not_the_accounts_file(settings, tmp_path, fake_upstream, auth):
    accounts_file = tmp_path / "accounts.json"
    original = json.dumps([{"name": "a", "refreshToken": refresh("a"), "authMethod": "social"}])
    accounts_file.write_text(original)
    fake_upstream.reset(accounts=fake_accounts("a"))
    client = create_app(replace(settings, accounts_file=str(accounts_file))).test_client()
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert fake_upstream.stats()["accounts"]["a"]["refresh_calls"] == 1
    assert accounts_file.read_text() == original
    records = [json.loads(p.read_text()) for p in (tmp_path / "state").glob("accounts-*.json")]
    assert [r["refreshToken"] for r in records] == [fake_upstream.stats()["accounts"]["a"]["refresh_token"]]
    again = create_app(replace(settings, accounts_file=str(accounts_file))).test_client()  # another worker
    assert again.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert fake_upstream.stats()["accounts"]["a"]["refresh_calls"] == 1


def test_health_shows_every_account_and_never_a_secret(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"usage": usage(50, 5)}))
    app, client = start(settings, pool_dir, "a", "b")
    app.extensions["ki2api"].usage.poll_once()
    for _ in range(4):
        client.post("/v1/chat/completions", json=CHAT, headers=auth)
    report = health(client)
    assert [row["name"] for row in report["accounts"]] == ["a", "b"]
    for row in report["accounts"]:
        assert row["state"] == "healthy" and row["expires_in_seconds"] > 3000 and row["expires_at"]
        fetched = {"a": 45, "b": 41.32}[row["name"]]  # less the fake Kiro's 0.01 credits per answer since
        assert row["usage"]["remaining"] == round(fetched - 0.01 * row["requests"], 4)
    assert sum(row["requests"] for row in report["accounts"]) == 4
    text = json.dumps(report)
    stats = fake_upstream.stats()["accounts"]
    for secret in [access("a"), access("b"), refresh("a"), refresh("b"), *stats["b"]["access_tokens"],
                   stats["b"]["refresh_token"], "aoaAAAAA", "aorAAAAA"]:
        assert secret not in text


def test_an_idc_account_inline_refreshes_at_the_oidc_endpoint(settings, tmp_path, fake_upstream, auth):
    accounts_file = tmp_path / "accounts.json"
    accounts_file.write_text(json.dumps([{"name": "work", "refreshToken": refresh("work"), "authMethod": "IdC",
                                          "clientId": "client-id-0001", "clientSecret": "client-secret-0001",
                                          "region": "us-east-1"}]))
    fake_upstream.reset(accounts=fake_accounts("work"))
    client = create_app(replace(settings, accounts_file=str(accounts_file))).test_client()
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    stats = fake_upstream.stats()
    assert (stats["oidc_calls"], stats["refresh_calls"], stats["accounts"]["work"]["refresh_calls"]) == (1, 0, 1)
    row = account(health(client), "work")
    assert row["credential"]["auth_method"] == "idc" and row["state"] == "healthy"
    assert "client-secret-0001" not in json.dumps(health(client))


def _send(app):
    """Start one upstream call through the pool, as the routes do."""
    payload = build_payload(Conversation("", [Turn("user", "hi")]), "claude-sonnet-4.5")
    return app.extensions["ki2api"].client.send(payload)


def _held_stream(app, fake):
    """An upstream answer that sends its first text, then stays silent (the model 'thinking')."""
    fake.script({"texts": ["first ", "second"], "hold_after": 2})
    upstream = _send(app)
    return upstream, upstream.events()


def test_abort_ends_a_blocked_stream_quietly_without_an_account_error(app, client, fake_upstream):
    upstream, events = _held_stream(app, fake_upstream)
    assert next(events).text == "first "
    rest: list = []
    reader = threading.Thread(target=lambda: rest.extend(events))  # blocks: the fake holds the answer
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()
    upstream.abort()  # from another thread, as the disconnect watch does from another greenlet
    reader.join(10)
    assert not reader.is_alive() and upstream.abandoned
    # the fake's hold ends when it sees ki2api close the connection (its own greenlet notices it, at once or a
    # moment later under load); nothing released it
    wait_for(lambda: fake_upstream.stats()["held_streams"] == 0, "the fake to see the connection closed", 10)
    assert fake_upstream.release() == 0
    row = account(health(client), "default")
    assert (row["state"], row["requests"], row["errors"], row["last_error"]) == ("healthy", 1, 0, None)
    assert app.extensions["ki2api"].pool.accounts[0].in_flight == 0


def test_without_abort_a_broken_stream_is_the_accounts_error(app, client, fake_upstream):
    upstream, events = _held_stream(app, fake_upstream)
    next(events)
    upstream.response.raw.shutdown()  # the same broken socket, but nobody said the client went away
    with pytest.raises(UpstreamError) as info:
        list(events)
    assert info.value.status == 502 and "broke mid-answer" in info.value.message
    row = account(health(client), "default")
    assert row["errors"] == 1 and row["last_error"]["kind"] == "stream"


def test_abort_after_the_answer_ended_is_harmless(app, client, fake_upstream, auth):
    upstream = _send(app)
    assert list(upstream.events())
    upstream.abort()  # the connection went back to the pool: nothing to shut down
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert account(health(client), "default")["errors"] == 0
