"""How ki2api presents itself to Kiro, for real: gunicorn with two gevent workers, the official SDKs, the fake Kiro
recording the machine id and conversation id of every request, and answering one account as suspended."""
from __future__ import annotations

import json
from pathlib import Path

import anthropic
import openai
import pytest
import requests

from ki2api.accounts.identity import is_machine_id
from tests.helpers.accounts import fake_accounts, write_token_dir
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-5"
SYSTEM = "You answer in one word."


def openai_client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=60)


def anthropic_client(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=60)


def test_each_turn_of_a_chat_carries_one_conversation_id_over_both_apis(gateway, fake_upstream):
    chat = openai_client(gateway).chat.completions
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Colour of the sky?"}]
    answer = chat.create(model=MODEL, messages=first).choices[0].message.content
    chat.create(model=MODEL, messages=first + [{"role": "assistant", "content": answer},
                                               {"role": "user", "content": "And at night?"}])
    chat.create(model=MODEL, messages=[{"role": "system", "content": SYSTEM},
                                       {"role": "user", "content": "Colour of grass?"}], stream=True).close()
    messages = anthropic_client(gateway).messages
    opening = [{"role": "user", "content": [{"type": "text", "text": "Name a river.",
                                             "cache_control": {"type": "ephemeral"}}]}]
    reply = messages.create(model=MODEL, max_tokens=64, system=SYSTEM, messages=opening)
    with messages.stream(model=MODEL, max_tokens=64, system=SYSTEM, messages=[
            {"role": "user", "content": "Name a river."}, {"role": "assistant", "content": reply.content[0].text},
            {"role": "user", "content": "Another?"}]) as stream:
        stream.until_done()
    ids = [record["conversation_id"] for record in fake_upstream.requests()]
    assert len(ids) == 5 and ids[0] == ids[1] and ids[3] == ids[4]
    assert len({ids[0], ids[2], ids[3]}) == 3


def test_two_workers_and_a_restart_show_kiro_one_machine_id_per_account(start_gateway, fake_upstream, tmp_path):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    write_token_dir(tmp_path / "pool", "alice", "bob")
    env = {"KIRO_TOKEN_DIR": str(tmp_path / "pool"), "KI2API_STATE_DIR": str(tmp_path / "state")}
    gateway = start_gateway(workers=2, **env)
    chat = openai_client(gateway).chat.completions
    for _ in range(16):
        chat.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    gateway.stop()
    seen: dict[str, set[str]] = {}
    for record in fake_upstream.requests():
        seen.setdefault(record["account"], set()).add(record["machine_id"])
    assert set(seen) == {"alice", "bob"} and all(len(ids) == 1 for ids in seen.values())
    alice, bob = seen["alice"].pop(), seen["bob"].pop()
    assert is_machine_id(alice) and is_machine_id(bob) and alice != bob
    assert json.loads(Path(tmp_path / "state" / "machine-ids.json").read_text()) == {"alice": alice, "bob": bob}

    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    again = openai_client(start_gateway(workers=1, **env)).chat.completions
    for _ in range(8):
        again.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert {r["machine_id"] for r in fake_upstream.requests()} <= {alice, bob}


def test_a_suspended_account_takes_no_traffic_from_any_worker(start_gateway, fake_upstream, tmp_path):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    fake_upstream.script({"suspended": True, "account": "alice", "repeat": 1000})
    write_token_dir(tmp_path / "pool", "alice", "bob")
    gateway = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "pool"))
    chat = openai_client(gateway).chat.completions
    for _ in range(20):
        assert chat.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    asked = fake_upstream.stats()["accounts"]["alice"]["chat_requests"]
    assert 1 <= asked <= 2  # each worker learns it at most once (a worker's view is at most 1 s old)
    for _ in range(10):
        chat.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert fake_upstream.stats()["accounts"]["alice"]["chat_requests"] == asked
    report = requests.get(f"{gateway.url}/health", timeout=10).json()
    states = {a["name"]: a["state"] for a in report["accounts"]}
    assert states == {"alice": "quarantined", "bob": "healthy"} and report["status"] == "degraded"
    assert gateway.log_text().count("alice is SUSPENDED by Kiro") == asked
    cleared = requests.post(f"{gateway.url}/dashboard/accounts/alice/clear",
                            headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert cleared.status_code == 200
    states = {a["name"]: a["state"] for a in requests.get(f"{gateway.url}/health", timeout=10).json()["accounts"]}
    assert states["alice"] == "healthy"
