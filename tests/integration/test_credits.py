"""Kiro's credits under gunicorn with two gevent workers, through the official openai and anthropic SDKs: usage, the
X-Kiro-Credits header, /metrics summed over the workers, and the account's remaining credits lowered until the
next poll."""
from __future__ import annotations

import anthropic
import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ki2api.web.auth import key_label
from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}", "Connection": "close"}
MODEL = "claude-sonnet-4-5"
HI = [{"role": "user", "content": "hi"}]


def credits_total(gw) -> dict[tuple[str, str], float]:
    """ki2api_kiro_credits_total by (account, key), as one scrape (answered by either worker) reports it."""
    text = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=10).text
    return {(s.labels["account"], s.labels["key"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "ki2api_kiro_credits_total"}


def remaining(gw) -> float | None:
    [row] = requests.get(f"{gw.url}/health", headers=AUTH, timeout=10).json()["accounts"]
    return (row.get("usage") or {}).get("remaining")


def test_credits_reach_the_sdks_the_header_and_metrics_summed_over_workers(start_gateway, fake_upstream):
    gw = start_gateway(workers=2)
    fake_upstream.script({"texts": ["one"], "credits": 0.036}, {"texts": ["two"], "credits": 0.25},
                         {"texts": ["three"], "credits": 0.5}, {"texts": ["four"], "credits": 0.125})
    oai = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    raw = oai.chat.completions.with_raw_response.create(model=MODEL, messages=HI)
    completion = raw.parse()
    assert raw.headers["X-Kiro-Credits"] == "0.036" and completion.usage.model_extra["kiro_credits"] == 0.036

    chunks = list(oai.chat.completions.create(model=MODEL, messages=HI, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].usage.model_extra["kiro_credits"] == 0.25

    claude = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30)
    raw_message = claude.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    assert raw_message.headers["X-Kiro-Credits"] == "0.5"
    assert raw_message.parse().usage.model_extra["kiro_credits"] == 0.5
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        [delta] = [event for event in stream if event.type == "message_delta"]
    # The SDK's accumulated final message keeps only the usage fields it knows; the event carries the figure.
    assert stream.get_final_message().content[0].text == "four" and delta.usage.model_extra["kiro_credits"] == 0.125

    # Counted when each response closes, in whichever worker served it; any worker's scrape sums them all.
    label = key_label(KEY)
    totals = wait_for(lambda: (lambda t: t if round(sum(t.values()), 6) == 0.911 else None)(credits_total(gw)),
                      "0.911 credits counted")
    [(account, key)] = totals
    assert key == label and KEY not in requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=10).text
    data = requests.get(f"{gw.url}/dashboard/data", headers=AUTH, timeout=10).json()
    assert data["totals"]["credits"] == {"accounts": {account: 0.911}, "keys": {label: 0.911}}


def test_remaining_credits_drop_in_every_worker_until_the_next_poll(start_gateway, fake_upstream):
    gw = start_gateway(workers=2, KIRO_USAGE_INTERVAL="3600")  # one poll at the first request, then not for an hour
    fake_upstream.set_default({"texts": ["ok"], "credits": 0.5})
    requests.get(f"{gw.url}/health", timeout=10)  # any request starts the worker's poller
    assert wait_for(lambda: remaining(gw), "the first usage poll") == 41.32  # the fake Kiro's 50 - 8.68
    for _ in range(4):
        response = requests.post(f"{gw.url}/v1/chat/completions", headers=AUTH, timeout=30,
                                 json={"model": MODEL, "messages": HI})
        assert response.headers["X-Kiro-Credits"] == "0.5"
    # Counted pool-wide (each worker flushes its counters within a second): every worker shows 41.32 - 2.
    wait_for(lambda: remaining(gw) == 39.32, "the lowered remaining credits")
    assert [remaining(gw) for _ in range(6)] == [39.32] * 6
