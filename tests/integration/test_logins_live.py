"""Accounts added while ki2api runs: `python -m ki2api import` and `accounts disable` against a running gunicorn
with two gevent workers; every worker takes the new account up at its next request, without a restart."""
from __future__ import annotations

import openai
import pytest
import requests

from ki2api.cli import main
from tests.helpers.accounts import fake_accounts, write_token_dir
from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration
JOINED = "account b joined the pool from the account store"


def ask(gateway) -> str:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    answer = client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content


def served_by(fake, name: str) -> int:
    return fake.stats()["accounts"][name]["chat_requests"]


def test_an_imported_account_serves_the_next_request_on_every_worker(start_gateway, fake_upstream, tmp_path,
                                                                     monkeypatch):
    state = tmp_path / "live-state"
    tokens = write_token_dir(tmp_path / "logins", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b"))
    monkeypatch.setenv("KI2API_STATE_DIR", str(state))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    assert main(["import", str(tokens / "a.json"), "--name", "a"]) == 0
    # No IDE token file: the server serves from the account store only.
    gateway = start_gateway(workers=2, KI2API_STATE_DIR=str(state),
                            KIRO_TOKEN_FILE=str(tmp_path / "no-ide" / "kiro-auth-token.json"))
    assert ask(gateway) == "Hello! I am the fake Kiro." and served_by(fake_upstream, "a") == 1

    assert main(["import", str(tokens / "b.json"), "--name", "b"]) == 0
    assert main(["accounts", "disable", "a"]) == 0

    def both_workers_saw_b() -> bool:
        requests.get(f"{gateway.url}/health", headers={"Connection": "close"}, timeout=10)
        return gateway.log_text().count(JOINED) == 2

    wait_for(both_workers_saw_b, "both workers to take account b up")
    answers = [ask(gateway) for _ in range(10)]
    assert answers == ["Hello! I am the fake Kiro."] * 10
    assert served_by(fake_upstream, "a") == 1 and served_by(fake_upstream, "b") == 10
    health = requests.get(f"{gateway.url}/health", timeout=10).json()
    rows = {row["name"]: row for row in health["accounts"]}
    assert set(rows) == {"a", "b"} and rows["a"]["state"] == "off" and rows["b"]["state"] == "healthy"
    assert "aorAAAAApool-b-refresh" not in gateway.log_text()  # the log never holds a token
