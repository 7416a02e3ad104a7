"""A suspended or locked account is quarantined (no retries, no traffic until cleared or its hold passes), shown in
/health, the status page data and /metrics; per-account max_concurrency and rpm."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ki2api.accounts.file_state import FileState
from ki2api.app import create_app
from ki2api.errors import RateLimited
from tests.helpers.accounts import access, fake_accounts, refresh, write_token_dir

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}


def chat(client, auth) -> int:
    return client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code


def row(client, name: str) -> dict:
    return next(a for a in client.get("/health").get_json()["accounts"] if a["name"] == name)


def test_a_suspended_account_takes_no_more_traffic_until_a_person_clears_it(client, fake_upstream, auth, caplog):
    fake_upstream.script({"suspended": True})
    with caplog.at_level(logging.WARNING, logger="ki2api"):
        assert chat(client, auth) == 403  # the one account: Kiro's refusal, as a permission error
        assert [chat(client, auth) for _ in range(3)] == [503, 503, 503]
    assert fake_upstream.stats()["chat_requests"] == 1  # no retry, no further request reached Kiro
    warnings = [r.getMessage() for r in caplog.records if "SUSPENDED" in r.getMessage()]
    assert len(warnings) == 1 and "quarantined" in warnings[0]

    report = client.get("/health").get_json()
    account = report["accounts"][0]
    assert report["status"] == "degraded" and any("quarantined" in w for w in report["warnings"])
    assert account["state"] == "quarantined"
    assert account["quarantine"]["until"] is not None and "TEMPORARILY_SUSPENDED" in account["quarantine"]["why"]
    assert 'ki2api_account_state{account="default",state="quarantined"} 1.0' in \
        client.get("/metrics", headers=auth).get_data(as_text=True)
    assert client.get("/dashboard/data", headers=auth).get_json()["accounts"][0]["state"] == "quarantined"

    assert client.post("/dashboard/accounts/default/clear").status_code == 401  # a person with the key only
    cleared = client.post("/dashboard/accounts/default/clear", headers=auth)
    assert cleared.status_code == 200 and cleared.get_json() == {"cleared": True, "account": "default"}
    assert chat(client, auth) == 200 and row(client, "default")["state"] == "healthy"
    assert client.post("/dashboard/accounts/nobody/clear", headers=auth).status_code == 404


def test_a_locked_account_is_quarantined_too(client, fake_upstream, auth):
    fake_upstream.script({"suspended": "locked"})
    assert chat(client, auth) == 403
    assert row(client, "default")["state"] == "quarantined"


@pytest.fixture
def two_accounts(settings, fake_upstream, tmp_path):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    write_token_dir(tmp_path / "pool", "alice", "bob")
    return replace(settings, token_dir=str(tmp_path / "pool"))


def test_requests_fail_over_from_a_suspended_account_and_never_return_to_it(two_accounts, fake_upstream, auth):
    client = create_app(two_accounts).test_client()
    fake_upstream.script({"suspended": True, "account": "alice", "repeat": 100})
    assert [chat(client, auth) for _ in range(10)] == [200] * 10
    served = fake_upstream.stats()["accounts"]
    assert served["alice"]["chat_requests"] <= 1 and served["bob"]["chat_requests"] >= 9
    assert row(client, "alice")["state"] == "quarantined" and row(client, "bob")["state"] == "healthy"


def send_until_alice_is_asked(client, fake, auth) -> None:
    """Chat until the pool has sent alice one request (ties are broken at random: 40 tries miss 1 in 10^12)."""
    for _ in range(40):
        assert chat(client, auth) == 200
        if fake.stats()["accounts"]["alice"]["chat_requests"]:
            return
    raise AssertionError("alice was never asked")


def test_the_hold_passing_lets_one_request_try_and_a_success_ends_the_quarantine(two_accounts, fake_upstream, auth):
    app = create_app(replace(two_accounts, suspension_hold=3600.0))
    client = app.test_client()
    fake_upstream.script({"suspended": True, "account": "alice", "repeat": 100})
    send_until_alice_is_asked(client, fake_upstream, auth)
    quarantine = row(client, "alice")["quarantine"]
    assert 3590 < quarantine["seconds_left"] <= 3600
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))  # Kiro restored alice
    pool = app.extensions["ki2api"].pool
    held = pool.states(fresh=True)["alice"]["quarantine"]
    pool.write("alice", "quarantine", {**held, "until": time.time() - 1})  # the hour has passed
    send_until_alice_is_asked(client, fake_upstream, auth)
    assert row(client, "alice")["state"] == "healthy" and row(client, "alice")["quarantine"] is None


def test_with_no_hold_only_a_person_ends_it(settings, fake_upstream, auth):
    client = create_app(replace(settings, suspension_hold=0.0)).test_client()
    fake_upstream.script({"suspended": True})
    assert chat(client, auth) == 403
    quarantine = row(client, "default")["quarantine"]
    assert quarantine["until"] is None and quarantine["seconds_left"] is None


def write_accounts(path: Path, limits: dict[str, dict]) -> Path:
    entries = [{"name": n, "accessToken": access(n), "refreshToken": refresh(n),
                "expiresAt": "2099-01-01T00:00:00.000Z", **extra} for n, extra in limits.items()]
    path.write_text(json.dumps(entries))
    return path


def test_max_concurrency_caps_the_leases_an_account_gets(settings, fake_upstream, tmp_path):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    path = write_accounts(tmp_path / "accounts.json", {"alice": {"max_concurrency": 1}, "bob": {"max_concurrency": 2}})
    pool = create_app(replace(settings, accounts_file=str(path))).extensions["ki2api"].pool
    leases = [pool.acquire() for _ in range(3)]
    assert sorted(lease.account.name for lease in leases) == ["alice", "bob", "bob"]
    with pytest.raises(RateLimited, match="max_concurrency") as busy:
        pool.acquire()
    assert busy.value.status == 429 and busy.value.retry_after == 1.0
    leases[0].release()
    assert pool.acquire().account.name == leases[0].account.name


def test_rpm_is_counted_in_the_shared_state(settings, fake_upstream, tmp_path):
    fake_upstream.reset(accounts=fake_accounts("alice"))
    path = write_accounts(tmp_path / "accounts.json", {"alice": {"rpm": 3}})
    pool = create_app(replace(settings, accounts_file=str(path))).extensions["ki2api"].pool
    for _ in range(2):
        pool.acquire().release()
    other_worker = FileState(settings.state_dir)  # another process on this machine shares the count
    assert other_worker.take("alice", 3, 60.0) == 0.0
    with pytest.raises(RateLimited, match="rpm") as busy:
        pool.acquire()
    assert 55 < busy.value.retry_after <= 60


def test_an_account_at_its_rpm_lets_the_others_serve(settings, fake_upstream, tmp_path, auth):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    path = write_accounts(tmp_path / "accounts.json", {"alice": {"rpm": 2}, "bob": {}})
    client = create_app(replace(settings, accounts_file=str(path))).test_client()
    assert [chat(client, auth) for _ in range(8)] == [200] * 8
    served = fake_upstream.stats()["accounts"]
    assert served["alice"]["chat_requests"] <= 2 and served["bob"]["chat_requests"] >= 6
    assert row(client, "alice")["limits"] == {"max_concurrency": None, "rpm": 2}


def test_a_quarantined_account_is_not_polled_for_usage_either(app, client, fake_upstream, auth):
    fake_upstream.script({"suspended": True})
    assert chat(client, auth) == 403
    services = app.extensions["ki2api"]
    assert services.usage.poll_once() == 0 and fake_upstream.stats()["usage_calls"] == 0
    services.pool.clear("default")
    assert services.usage.poll_once() == 1 and fake_upstream.stats()["usage_calls"] == 1
