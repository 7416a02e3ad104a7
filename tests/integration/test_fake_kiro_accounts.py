"""The fake Kiro's named accounts: own refresh chains, answers aimed at one account, usage limits."""
from __future__ import annotations

import pytest
import requests

from tests.fakes.kiro.process import FakeKiro
from tests.helpers.kiro_chat import ACCESS, REFRESH, chat

pytestmark = pytest.mark.integration

USAGE = {"usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": 10.0,
                                 "currentUsageWithPrecision": 2.5}]}


@pytest.fixture(scope="module")
def server():
    with FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH) as fake:
        yield fake


def _fake(server, **extra):
    server.reset(accounts=[{"name": "a", "access_tokens": ["aoaAAAAAa"], "refresh_token": "aorAAAAAa", **extra},
                           {"name": "b", "access_tokens": ["aoaAAAAAb"], "refresh_token": "aorAAAAAb"}])
    return server


def refresh(fake, token: str) -> requests.Response:
    return requests.post(fake.refresh_url, json={"refreshToken": token}, timeout=10)


def test_each_account_rotates_its_own_chain_and_the_top_level_one_is_untouched(server):
    fake = _fake(server)
    answer = refresh(fake, "aorAAAAAa").json()
    assert answer["accessToken"].startswith("aoaAAAAAfake-a-access-")
    assert chat(fake, "aoaAAAAAa").status_code == 403  # rotated away
    assert chat(fake, answer["accessToken"]).status_code == 200
    assert chat(fake, "aoaAAAAAb").status_code == 200 and chat(fake, ACCESS).status_code == 200
    assert refresh(fake, "aorAAAAAa").json()["error"] == "invalid_grant"  # spent
    stats = fake.stats()
    assert stats["accounts"]["a"]["refresh_calls"] == 1 and stats["accounts"]["b"]["refresh_calls"] == 0
    assert (stats["accounts"]["a"]["chat_requests"], stats["accounts"]["b"]["chat_requests"]) == (1, 1)
    assert stats["refresh_token"] == REFRESH  # the top-level chain did not move
    assert [r.get("account") for r in fake.requests() if r["status"] == 200] == ["a", "b", ""]


def test_scripts_and_defaults_can_aim_at_one_account(server):
    fake = _fake(server)
    fake.script({"status": 429, "account": "b"}, {"status": 500})
    assert chat(fake, "aoaAAAAAa").status_code == 500  # the first spec for any account
    assert chat(fake, "aoaAAAAAa").status_code == 200
    assert chat(fake, "aoaAAAAAb").status_code == 429
    fake.set_default({"status": 402, "account": "a"})
    assert [chat(fake, "aoaAAAAAa").status_code for _ in range(2)] == [402, 402]
    assert chat(fake, "aoaAAAAAb").status_code == 200


def test_usage_limits_answer_per_account_and_need_a_valid_token(server):
    fake = _fake(server, usage=USAGE)

    def usage(token: str) -> requests.Response:
        return requests.get(f"{fake.url}/getUsageLimits", params={"origin": "AI_EDITOR"}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    assert usage("aoaAAAAAa").json() == USAGE
    assert usage("aoaAAAAAb").json()["usageBreakdownList"][0]["resourceType"] == "CREDIT"
    assert usage("aoaAAAAAnope").status_code == 403
    assert fake.stats()["usage_calls"] == 2 and fake.stats()["accounts"]["a"]["usage_calls"] == 1
