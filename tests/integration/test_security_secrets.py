"""No credential anywhere a person or a scraper can see: logs, error bodies, /health, /metrics, the status page.

A whole session runs against gunicorn + the fake Kiro with real-looking tokens, at DEBUG log level: refreshes
(rotating tokens), whole and streamed answers on both APIs, a token Kiro rejects, wrong client keys, a dead
refresh token. Then every byte ki2api showed anyone is searched for every secret involved, whole and in part.
"""
from __future__ import annotations

import json
import secrets
import string

import pytest
import requests

from tests.helpers.credentials import write_token_file
from tests.helpers.gateway import Gateway

pytestmark = pytest.mark.integration
ALPHABET = string.ascii_letters + string.digits


def random_token(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


ACCESS = random_token("aoaAAAAAkZ", 380)
REFRESH = random_token("aorAAAAAkZ", 300)
API_KEY = random_token("sk-ki2api-", 40)
WRONG_KEY = random_token("sk-live-", 40)
DENIED = {"__type": "com.amazon.coral.service#AccessDeniedException",
          "message": "The bearer token included in the request is invalid."}


def fragments(secret: str) -> list[str]:
    """The secret and slices of it long enough to be unmistakable (a truncated token is still a leak)."""
    return [secret] + [secret[i:i + 12] for i in range(8, len(secret) - 12, 12)]


def test_a_session_with_real_looking_tokens_leaks_none_of_them(fake_kiro_server, tmp_path):
    fake = fake_kiro_server
    fake.reset(access_tokens=[], refresh_token=REFRESH)  # our access token is stale: a refresh comes first
    token_file = write_token_file(tmp_path / "sso" / "kiro-auth-token.json", access=ACCESS, refresh=REFRESH,
                                  expires_in=-60)
    env = {"API_KEY": API_KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake.url,
           "KIRO_REFRESH_URL": fake.refresh_url, "KIRO_OIDC_URL": fake.oidc_url, "LOG_LEVEL": "DEBUG",
           "KI2API_STATE_DIR": str(tmp_path / "state"), "FAKE_KIRO_LOG_LEVEL": "WARNING"}
    gw = Gateway(env, tmp_path / "gunicorn.log").wait_ready()
    seen: list[str] = []
    good = {"Authorization": f"Bearer {API_KEY}"}

    def keep(response: requests.Response) -> requests.Response:
        seen.append(json.dumps(dict(response.headers)) + response.text)
        return response

    try:
        chat = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}]}
        assert keep(requests.post(f"{gw.url}/v1/chat/completions", json=chat, headers=good, timeout=30)).ok
        assert keep(requests.post(f"{gw.url}/v1/chat/completions", json={**chat, "stream": True}, headers=good,
                                  timeout=30)).ok
        fake.script({"status": 403, "json": DENIED})  # Kiro rejects the refreshed token once: refresh, retry
        message = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        assert keep(requests.post(f"{gw.url}/v1/messages", json={**message, "stream": True},
                                  headers={"x-api-key": API_KEY}, timeout=30)).ok
        assert keep(requests.post(f"{gw.url}/v1/messages/count_tokens", json=message, headers={"x-api-key": API_KEY},
                                  timeout=30)).ok
        for headers in ({"Authorization": f"Bearer {WRONG_KEY}"}, {"x-api-key": WRONG_KEY},
                        {"Authorization": f"Bearer {API_KEY[:-1]}"}):
            assert keep(requests.post(f"{gw.url}/v1/chat/completions", json=chat, headers=headers,
                                      timeout=30)).status_code == 401
        assert keep(requests.post(f"{gw.url}/v1/chat/completions", data="{not json", headers=good, timeout=30)
                    ).status_code == 400
        issued = fake.stats()
        rotated = [t for t in issued["access_tokens"]] + [issued["refresh_token"]]
        assert issued["refresh_calls"] == 2 and REFRESH not in rotated
        # Then the login dies: Kiro forgets the refresh token, rejects the access token.
        fake.reset(access_tokens=[], refresh_token="aorAAAAAsomebody-else")
        assert keep(requests.post(f"{gw.url}/v1/chat/completions", json=chat, headers=good, timeout=30)
                    ).status_code == 401
        for path in ("/health", "/metrics", "/", "/dashboard", "/dashboard/data", "/openapi.json"):
            response = keep(requests.get(f"{gw.url}{path}", headers=good, timeout=30))
            assert response.status_code == 200, path
        for path in ("/metrics", "/dashboard/data"):  # and what they say to someone without the key
            keep(requests.get(f"{gw.url}{path}", timeout=30))
    finally:
        gw.stop()
    log = gw.log_path.read_text(errors="replace")
    assert "refreshed" in log.lower()  # the session did what it was meant to
    everything = log + "\n".join(seen)
    for name, secret in [("access token", ACCESS), ("refresh token", REFRESH), ("API key", API_KEY),
                         ("wrong key", WRONG_KEY)] + [(f"rotated token {t[:12]}", t) for t in rotated]:
        for piece in fragments(secret):
            assert piece not in everything, f"{name} ({piece}) shows up"
