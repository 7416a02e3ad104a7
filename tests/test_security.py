"""Security through Flask's test client: key checks, failed-key limiting, CORS, request limits, compose ports."""
from __future__ import annotations

import base64
import json
import logging
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ki2api.app import create_app
from ki2api.observability.wrong_keys import WrongKeyLog
from ki2api.web.auth import key_is_valid
from ki2api.web.key_throttle import PUBLIC_ENDPOINTS, FailedKeyLimiter
from ki2api.settings import ConfigError, Settings
from tests.helpers.credentials import KEY

REPO = Path(__file__).resolve().parents[1]
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def app_with(settings: Settings, **changes):
    return create_app(replace(settings, **changes)).test_client()


# --- keys ---------------------------------------------------------------------------------------------------

def test_only_exact_keys_pass():
    keys = ("s3cret-key-one", "another-key")
    assert key_is_valid("s3cret-key-one", keys) and key_is_valid("another-key", keys)
    for wrong in ("s3cret-key-on", "s3cret-key-one ", "s3cret-key-onf", "", "S3CRET-KEY-ONE", "another-key\x00",
                  "s3cret-key-oneanother-key", None):
        assert not key_is_valid(wrong, keys), wrong


@pytest.mark.parametrize("path,body", [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES),
                                       ("/v1/models", None), ("/metrics", None), ("/dashboard/data", None)])
def test_a_failed_key_says_nothing_about_the_valid_ones(client, path, body):
    """Missing, random, almost-right and too-long keys get byte-identical answers that never echo the key."""
    attempts = [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {KEY[:-1]}"},
                {"Authorization": f"Bearer {KEY}x"}, {"x-api-key": KEY.upper()}, {"Authorization": "Basic abc"}]
    answers = []
    for headers in attempts:
        response = client.post(path, json=body, headers=headers) if body else client.get(path, headers=headers)
        assert response.status_code == 401
        payload = response.get_json()
        payload.pop("request_id", None)
        answers.append((json.dumps(payload, sort_keys=True),
                        sorted((k, v) for k, v in response.headers.items() if k != "X-Request-Id")))
        text = response.get_data(as_text=True)
        for secret in (KEY, KEY[:-1], KEY.upper()):
            assert secret not in text
    assert len(set(json.dumps(a) for a in answers)) == 1, answers


# --- failed-key limit -----------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_blocks_after_n_failures_until_the_oldest_leaves_the_window():
    clock = Clock()
    limiter = FailedKeyLimiter(limit=3, window=60, clock=clock)
    for _ in range(2):
        limiter.record("10.0.0.1")
        clock.now += 1
    assert limiter.retry_after("10.0.0.1") is None
    limiter.record("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(58.0)
    assert limiter.retry_after("10.0.0.2") is None
    clock.now += 58.5
    assert limiter.retry_after("10.0.0.1") is None


def test_failed_key_limit_is_on_by_default_and_can_be_turned_off(settings):
    assert Settings.from_env({}).auth_fail_limit == 20
    guessed = app_with(settings, auth_fail_limit=Settings.from_env({}).auth_fail_limit)
    for _ in range(20):
        assert guessed.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guessed.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 429
    assert guessed.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 429
    unlimited = app_with(settings, auth_fail_limit=0)
    for _ in range(50):
        assert unlimited.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert unlimited.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_a_flood_of_wrong_keys_is_one_line_per_address_then_one_summary(settings, caplog):
    """10,000 guesses must not write 10,000 log lines: the first gets its request line, the rest one summary."""
    clock = Clock()
    client = app_with(settings, auth_fail_limit=0)
    client.application.extensions["ki2api.requests"].wrong_keys = WrongKeyLog(clock=clock)
    caplog.set_level(logging.INFO)
    for _ in range(300):
        with client.get("/v1/models", headers={"Authorization": "Bearer wrong"}) as refused:  # closed: logged
            assert refused.status_code == 401
    clock.now += 61
    client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).close()  # the next minute's: the summary
    lines = [r.getMessage() for r in caplog.records if r.name in ("ki2api.request", "ki2api.auth")]
    assert lines[0] == "request" and lines[-1] == "request" and len(lines) == 3
    assert lines[1].startswith("refused 299 more requests with a wrong or missing API key in the last 61 s from 1 ")
    routes = client.application.extensions["ki2api.requests"].metrics.totals()["routes"]
    assert routes["/v1/models"] == {"requests": 301, "errors": 301}  # every one still counted


def test_failed_key_limit_answers_429_in_each_apis_format_even_to_the_right_key(settings):
    client = app_with(settings, auth_fail_limit=3, auth_fail_window=300.0)
    for _ in range(3):
        assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    blocked = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert blocked.status_code == 429
    assert blocked.get_json()["error"]["code"] == "too_many_failed_attempts"
    assert 250 <= int(blocked.headers["Retry-After"]) <= 300
    anthropic = client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": KEY})
    assert anthropic.status_code == 429 and anthropic.get_json()["type"] == "error"
    assert client.get("/health").status_code == 200  # what needs no key is not limited
    other = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"},
                       environ_overrides={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


KEYED = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/messages"), ("GET", "/metrics"),
         ("GET", "/dashboard/data"), ("GET", "/debug/runtime")]


def send(client, method: str, path: str, headers: dict):
    body = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES}.get(path)
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize("method,path", KEYED)
def test_wrong_keys_on_any_keyed_path_count_and_block_every_keyed_path(settings, method, path):
    """A guesser cannot get around AUTH_FAIL_LIMIT by trying its keys on /metrics or the status page's data."""
    client = app_with(settings, auth_fail_limit=3, debug_endpoints=True)
    for _ in range(3):
        assert send(client, method, path, {"Authorization": "Bearer guess"}).status_code == 401
    for other_method, other in KEYED:
        blocked = send(client, other_method, other, {"Authorization": f"Bearer {KEY}"})
        assert blocked.status_code == 429, (other, blocked.get_data(as_text=True))
        assert "Retry-After" in blocked.headers
    for public in ("/health", "/", "/dashboard", "/static/dashboard.js", "/openapi.json"):
        response = client.get(public)
        assert response.status_code == 200, public
        response.close()
    fresh = send(client, method, path, {"Authorization": f"Bearer {KEY}"})
    assert fresh.status_code == 429  # and still from the same address only:
    assert client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"},
                      environ_overrides={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200


def test_a_public_metrics_endpoint_stays_open_to_a_blocked_address(settings):
    client = app_with(settings, auth_fail_limit=2, metrics_public=True)
    for _ in range(2):
        assert client.get("/dashboard/data", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert client.get("/dashboard/data", headers={"Authorization": f"Bearer {KEY}"}).status_code == 429
    assert client.get("/metrics").status_code == 200


def test_the_public_endpoints_are_exactly_those_that_answer_without_a_key(settings):
    """key_throttle.PUBLIC_ENDPOINTS must follow the routes: a new keyed route is limited, a new public one is not."""
    app = create_app(replace(settings, debug_endpoints=True))
    client = app.test_client()
    without_key = set()
    for rule in app.url_map.iter_rules():
        method = "GET" if "GET" in rule.methods else "POST"
        path = rule.rule.replace("<path:filename>", "dashboard.js").replace("<path:name>", "claude-sonnet-4-5")
        response = client.open(path, method=method, json={} if method == "POST" else None)
        if response.status_code != 401:
            without_key.add(rule.endpoint)
        response.close()
    assert without_key == PUBLIC_ENDPOINTS


def test_failed_key_limit_counts_the_forwarded_address_only_behind_a_trusted_proxy(settings):
    wrong, right = {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {KEY}"}
    behind_nginx = app_with(settings, auth_fail_limit=2, trusted_proxies=1)
    for _ in range(2):
        behind_nginx.get("/v1/models", headers={**wrong, "X-Forwarded-For": "198.51.100.9"})
    assert behind_nginx.get("/v1/models", headers={**right, "X-Forwarded-For": "198.51.100.9"}).status_code == 429
    assert behind_nginx.get("/v1/models", headers={**right, "X-Forwarded-For": "198.51.100.10"}).status_code == 200
    # Without a trusted proxy the header is the client's own word: it cannot pick another address with it.
    direct = app_with(settings, auth_fail_limit=2)
    for forwarded in ("1.2.3.4", "5.6.7.8"):
        direct.get("/v1/models", headers={**wrong, "X-Forwarded-For": forwarded})
    assert direct.get("/v1/models", headers={**right, "X-Forwarded-For": "9.9.9.9"}).status_code == 429


# --- CORS -----------------------------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"}


def test_cors_is_off_by_default(client):
    preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = client.get("/v1/models", headers={"Origin": "https://app.example.com",
                                                  "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_the_configured_origins_only(settings):
    client = app_with(settings, cors_origins=("https://app.example.com",))
    preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == PREFLIGHT["Access-Control-Request-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    response = client.get("/v1/models", headers={"Origin": "https://app.example.com",
                                                  "Authorization": f"Bearer {KEY}"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in response.headers["Vary"] and "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
    stranger = {**PREFLIGHT, "Origin": "https://evil.example.net"}
    refused = client.options("/v1/chat/completions", headers=stranger)
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert client.get("/v1/models", headers={"Origin": "https://evil.example.net"}).status_code == 401


def test_cors_wildcard(settings):
    client = app_with(settings, cors_origins=("*",))
    response = client.get("/v1/models", headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {KEY}"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("raw", ["app.example.com", "ftp://x.example", "https://x.example/path", "https://"])
def test_cors_origins_setting_is_checked(raw):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        Settings.from_env({"CORS_ORIGINS": raw})


# --- limits ---------------------------------------------------------------------------------------------------

def post(client, path: str, body, **headers):
    headers = {"Authorization": f"Bearer {KEY}", **headers}
    if isinstance(body, (bytes, str)):
        return client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    return client.post(path, json=body, headers=headers)


@pytest.mark.parametrize("path,body", [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)])
def test_too_many_messages_is_400_naming_messages(settings, path, body):
    client = app_with(settings, max_messages=5)
    many = {**body, "messages": [{"role": "user", "content": "x"}] * 6}
    response = post(client, path, many)
    assert response.status_code == 400
    assert "MAX_MESSAGES" in json.dumps(response.get_json())
    if path.endswith("completions"):
        assert response.get_json()["error"]["param"] == "messages"
    assert post(client, path, {**body, "messages": [{"role": "user", "content": "x"}] * 5}).status_code != 400


@pytest.mark.parametrize("path,body,tool", [
    ("/v1/chat/completions", CHAT, {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}),
    ("/v1/messages", MESSAGES, {"name": "f", "input_schema": {"type": "object"}})])
def test_too_many_tools_is_400(settings, path, body, tool):
    client = app_with(settings, max_tools=2)
    response = post(client, path, {**body, "tools": [tool] * 3})
    assert response.status_code == 400 and "MAX_TOOLS" in json.dumps(response.get_json())


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 3000).decode()


@pytest.mark.parametrize("path,body,where", [
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]},
     "messages[0].content[1].image_url.url"),
    ("/v1/messages", {**MESSAGES, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]},
     "messages[0].content[0].source.data")])
def test_too_large_image_is_400_naming_the_image(settings, path, body, where):
    client = app_with(settings, max_image_bytes=2000)
    response = post(client, path, body)
    assert response.status_code == 400
    assert where in json.dumps(response.get_json()) and "MAX_IMAGE_BYTES" in json.dumps(response.get_json())


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_body_limits_and_shape_errors(settings, path):
    client = app_with(settings, max_body_bytes=2048)
    too_big = post(client, path, json.dumps({"messages": "x" * 5000}))
    assert too_big.status_code == 413 and "MAX_BODY_BYTES" in too_big.get_data(as_text=True)
    wrong_type = client.post(path, data="model=x", headers={"Authorization": f"Bearer {KEY}",
                                                            "Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415
    broken = post(client, path, '{\n  "model": "claude-sonnet-4-5",\n  "messages": [}\n')
    assert broken.status_code == 400 and "line 3 column 16" in broken.get_data(as_text=True)
    for bad in ("[" * 100_000, '{"n": ' + "9" * 5000 + "}", '{"x": NaN}', b'{"x": "\xff"}', "[1, 2]"):
        response = post(client, path, bad)
        assert response.status_code in (400, 413), (bad[:20], response.status_code)
        assert "error" in response.get_json()


def image_request(path: str, url: str) -> dict:
    if path == "/v1/chat/completions":
        return {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    return {**MESSAGES, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": url}}]}]}


@pytest.mark.parametrize("path,advice", [("/v1/chat/completions", "data: URL"), ("/v1/messages", "base64 source")])
def test_remote_image_urls_are_refused_not_fetched(client, fake_upstream, path, advice):
    """A loopback URL (what a fetcher must never reach) gets a 400, and nothing ever connects to it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        response = post(client, path, image_request(path, f"http://127.0.0.1:{listener.getsockname()[1]}/cat.png"))
        assert response.status_code == 400 and advice in response.get_json()["error"]["message"]
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # the answer came first, so a fetch would already be waiting here
            listener.accept()
    assert fake_upstream.stats()["chat_requests"] == 0


# --- deployment defaults --------------------------------------------------------------------------------------

def test_compose_publishes_on_the_hosts_loopback_only():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_debug_endpoints_are_off_by_default():
    assert Settings.from_env({}).debug_endpoints is False
    assert Settings.from_env({"KI2API_DEBUG_ENDPOINTS": "1"}).debug_endpoints is True
