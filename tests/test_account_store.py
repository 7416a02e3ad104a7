"""The account store joining a running app: an account stored after create_app serves the next request;
disable takes it out; an API-key account serves with its key as the bearer and `tokentype` on usage calls."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import requests

from ki2api.accounts import live
from ki2api.accounts.credential import credential_from
from ki2api.accounts.store import AccountStore
from ki2api.app import create_app
from ki2api.upstream.headers import usage_headers
from tests.helpers.accounts import access, fake_accounts, refresh
from tests.helpers.credentials import iso

API_KEY = "ksk_abcdefghij0123456789"
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}


def served(fake, name: str) -> int:
    return fake.stats()["accounts"][name]["chat_requests"]


def app_without_ide(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(live, "CHECK_EVERY", 0.0)  # look at the store at every request
    return create_app(dataclasses.replace(settings, token_file=str(tmp_path / "no-ide.json")))


def test_an_account_stored_while_the_app_runs_serves_the_next_request(settings, fake_upstream, tmp_path,
                                                                      monkeypatch, auth):
    fake_upstream.reset(accounts=fake_accounts("new"))
    client = app_without_ide(settings, tmp_path, monkeypatch).test_client()
    assert [a["name"] for a in client.get("/health").get_json()["accounts"]] == ["default"]
    store = AccountStore(settings.state_dir)
    store.add({"accessToken": access("new"), "refreshToken": refresh("new"), "authMethod": "social",
               "expiresAt": iso(datetime.now(timezone.utc) + timedelta(hours=1))}, "import:test", name="new")
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert served(fake_upstream, "new") == 1
    names = [a["name"] for a in client.get("/health").get_json()["accounts"]]
    assert names == ["new"]  # no IDE token file: the empty default account left the pool
    store.set_enabled("new", False)
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code >= 400
    assert served(fake_upstream, "new") == 1
    store.remove("new")  # the last stored account: the zero-configuration one (needing a login) is back
    assert [(a["name"], a["state"]) for a in client.get("/health").get_json()["accounts"]] == [
        ("default", "needs_login")]


def test_an_api_key_account_is_the_bearer_and_says_so_on_usage_calls(settings, fake_upstream, tmp_path,
                                                                    monkeypatch, auth):
    fake_upstream.reset(accounts=[{"name": "key", "access_tokens": [API_KEY]}])
    AccountStore(settings.state_dir).add({"accessToken": API_KEY, "authMethod": "api_key"}, "import:api-key")
    client = app_without_ide(settings, tmp_path, monkeypatch).test_client()
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert served(fake_upstream, "key") == 1
    row = client.get("/health").get_json()["accounts"][0]
    assert row["state"] == "healthy" and row["credential"]["needs_login"] is False
    assert API_KEY not in json.dumps(client.get("/health").get_json())
    headers = usage_headers(credential_from({"accessToken": API_KEY}, "accounts", None), "0.1.0", "0" * 64)
    assert headers["tokentype"] == "API_KEY"
    plain = usage_headers(credential_from({"accessToken": access("x")}, "accounts", None), "0.1.0", "0" * 64)
    assert "tokentype" not in plain
    url = f"{fake_upstream.url}/getUsageLimits"
    assert requests.get(url, headers={**headers}, timeout=5).status_code == 200
    del headers["tokentype"]
    assert requests.get(url, headers=headers, timeout=5).status_code == 403  # the fake refuses it like Kiro
