"""The model catalog for real: gunicorn with two gevent workers fetching each account's ListAvailableModels
from the fake Kiro at start (different lists per account), listed through the official openai and anthropic
SDKs, and requests routed to the accounts that list their model."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import openai
import pytest
import requests

from ki2api.accounts.roster import VIEW_TTL
from tests.helpers.accounts import fake_accounts, write_token_dir
from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration
A_MODELS = ["auto", "claude-haiku-4.5", "glm-5"]
B_MODELS = ["auto", "claude-opus-4.7", "claude-sonnet-4.6"]
MESSAGES = [{"role": "user", "content": "hi"}]


def health(gateway) -> dict[str, Any]:
    response = requests.get(f"{gateway.url}/health", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def gateway(start_gateway, fake_upstream, tmp_path):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": A_MODELS}, b={"models": B_MODELS}))
    gw = start_gateway(workers=2, KIRO_TOKEN_DIR=str(tmp_path / "tokens"), KIRO_MODELS_INTERVAL="3600")
    wait_for(lambda: health(gw)["models"]["source"] == "service"
             and all(row["models"] for row in health(gw)["models"]["accounts"]), "both accounts' model lists")
    # The worker that answered /health has the lists; the other reads the shared state at most VIEW_TTL later.
    fetched = max(datetime.fromisoformat(row["fetched_at"].replace("Z", "+00:00"))
                  for row in health(gw)["models"]["accounts"])
    wait_for(lambda: (datetime.now(timezone.utc) - fetched).total_seconds() > VIEW_TTL,
             "every worker's view of the shared state to be newer than the lists")
    return gw


def test_the_sdks_list_the_union_of_the_accounts_models_once_each(gateway, fake_upstream):
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    listed = [m.id for m in oai.models.list()]
    assert len(listed) == len(set(listed))
    assert set(A_MODELS + B_MODELS) <= set(listed)
    assert "claude-opus-4-7" in listed and "claude-sonnet-4-5" not in listed  # no account lists sonnet 4.5
    opus = oai.models.retrieve("claude-opus-4-7")
    assert (opus.kiro_id, opus.context_window, opus.max_output_tokens) == ("claude-opus-4.7", 1_000_000, 128_000)

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=30)
    pages = claude.models.list(limit=3)
    assert [m.id for m in pages] == listed  # auto-paged through has_more / after_id
    assert all(m.type == "model" for m in pages.data)
    assert claude.models.retrieve("claude-opus-4.7").display_name == "Claude Opus 4.7"
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("claude-sonnet-4-5")

    for name in ("a", "b"):  # one fetch per account for both workers: the others read the shared state
        assert fake_upstream.stats()["accounts"][name]["models_calls"] == 1


def test_auto_works_and_a_model_one_account_lists_goes_to_it(gateway, fake_upstream):
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    assert oai.chat.completions.create(model="auto", messages=MESSAGES).choices[0].message.content
    before = {n: s["chat_requests"] for n, s in fake_upstream.stats()["accounts"].items()}
    for _ in range(4):
        assert oai.chat.completions.create(model="claude-opus-4-7", messages=MESSAGES).choices[0].message.content
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=30)
    for _ in range(4):
        assert claude.messages.create(model="glm-5", max_tokens=64, messages=MESSAGES).content
    after = {n: s["chat_requests"] for n, s in fake_upstream.stats()["accounts"].items()}
    assert (after["a"] - before["a"], after["b"] - before["b"]) == (4, 4)
    refused = [r for r in fake_upstream.requests() if r.get("status") == 400]
    assert refused == []  # routed by the lists: no account was asked for a model it lacks

    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="claude-opus-4-6", messages=MESSAGES)
    assert "claude-opus-4.7" in info.value.message and "glm-5" in info.value.message


def test_two_replicas_sharing_redis_fetch_each_list_once_and_route_alike(start_gateway, fake_upstream, tmp_path,
                                                                         redis_server):
    write_token_dir(tmp_path / "tokens", "a", "b")
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": A_MODELS}, b={"models": B_MODELS}))
    replicas = []
    for name in ("one", "two"):  # separate token copies and state directories, as on separate machines
        directory = tmp_path / name / "tokens"
        shutil.copytree(tmp_path / "tokens", directory)
        replicas.append(start_gateway(workers=2, KIRO_TOKEN_DIR=str(directory), REDIS_URL=redis_server.url,
                                      KI2API_STATE_DIR=str(tmp_path / name / "state"), KIRO_MODELS_INTERVAL="3600"))
    clients = [openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30) for gw in replicas]
    with ThreadPoolExecutor(max_workers=8) as pool:  # every worker of both replicas starts its fetcher
        assert all(pool.map(lambda i: clients[i % 2].models.list().data, range(16)))
    for gw in replicas:
        wait_for(lambda: all(row["models"] for row in health(gw)["models"]["accounts"]), "both lists on /health")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda i: clients[i % 2].chat.completions.create(model="claude-sonnet-4-6",
                                                                            messages=MESSAGES), range(10))
        assert all(a.choices[0].message.content for a in answers)
    stats = fake_upstream.stats()["accounts"]
    assert (stats["a"]["models_calls"], stats["b"]["models_calls"]) == (1, 1)  # 4 workers, 2 replicas: once each
    assert (stats["a"]["chat_requests"], stats["b"]["chat_requests"]) == (0, 10)  # only b lists sonnet 4.6
    assert [m.id for m in clients[0].models.list()] == [m.id for m in clients[1].models.list()]


def test_a_model_newer_than_the_builtin_table_is_served_from_the_first_request(start_gateway, fake_upstream,
                                                                               tmp_path):
    write_token_dir(tmp_path / "tokens", "b")
    fake_upstream.reset(accounts=fake_accounts("b", b={"models": ["auto", "claude-opus-5"]}), models_delay=2.0)
    gateway = start_gateway(workers=1, KIRO_TOKEN_DIR=str(tmp_path / "tokens"), KIRO_MODELS_INTERVAL="3600")
    # The list takes Kiro 2 s: the chat comes while the worker's first fetch (begun by the start-up /health
    # check) is still out, and asks for a model only the service's list has.
    assert health(gateway)["models"]["source"] == "builtin"
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    answer = oai.chat.completions.create(model="claude-opus-5", messages=MESSAGES)
    assert answer.choices[0].message.content and answer.model == "claude-opus-5"
