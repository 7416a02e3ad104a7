"""Prompt caching under gunicorn with gevent workers: Anthropic `cache_control` reaches the fake Kiro as cache
points, and the cache figures it reports come back through the official anthropic and openai SDKs."""
from __future__ import annotations

import anthropic
import openai
import pytest

from tests.helpers.credentials import ACCESS, KEY, REFRESH

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-6"  # Kiro claude-sonnet-4.6: 4 cache points, of at least 1,024 tokens
REFUSING = "claude-sonnet-4.5"  # the model the refusal test marks (the gateway remembers it for 6 h)
LONG = "You review pull requests for a Python web service; be concrete, cite lines, and keep it short. " * 250
SYSTEM = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]


@pytest.fixture
def client(gw):
    with anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30) as sdk:
        yield sdk


def cache_points(record: dict) -> list:
    """Where a request Kiro got carried cache points: history indexes, and "current"."""
    state = record["body"]["conversationState"]
    found = [i for i, entry in enumerate(state["history"]) if "cachePoint" in next(iter(entry.values()))]
    return found + (["current"] if "cachePoint" in state["currentMessage"]["userInputMessage"] else [])


def conversation(question: str) -> list[dict]:
    """Claude Code's pattern: the last user block marked, so the next turn reads what this one wrote."""
    return [{"role": "user", "content": [{"type": "text", "text": question, "cache_control": {"type": "ephemeral"}}]}]


@pytest.mark.parametrize("stream", [False, True])
def test_the_second_request_reads_what_the_first_wrote(client, fake_upstream, stream):
    def ask() -> anthropic.types.Usage:
        if not stream:
            return client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM,
                                          messages=conversation("Review the diff.")).usage
        with client.messages.stream(model=MODEL, max_tokens=200, system=SYSTEM,
                                    messages=conversation("Review the diff.")) as events:
            return events.get_final_message().usage
    first, second = ask(), ask()
    assert first.cache_creation_input_tokens > 1000 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert first.input_tokens == second.input_tokens > 0  # the uncached rest: the question, Kiro's own prompt
    sent = fake_upstream.requests()
    assert [cache_points(r) for r in sent] == [[0, "current"], [0, "current"]]
    assert [r["cache_usage"]["cacheReadInputTokens"] for r in sent] == [0, second.cache_read_input_tokens]


def test_a_follow_up_turn_reads_the_earlier_prefix(client, fake_upstream):
    first = client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM, messages=conversation("One?"))
    history = [{"role": "user", "content": [{"type": "text", "text": "One?", "cache_control": {"type": "ephemeral"}}]},
               {"role": "assistant", "content": first.content[0].text},
               *conversation("Two?")]
    second = client.messages.create(model=MODEL, max_tokens=200, system=SYSTEM, messages=history)
    # the prefix through "One?" was written by the first request and is read now; the longer one is new
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens > 0
    assert cache_points(fake_upstream.requests()[-1]) == [0, 2, "current"]


def test_a_service_refusing_cache_points_still_answers(gw, client, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, cache_points="refuse")
    answered = client.messages.create(model=REFUSING, max_tokens=200, system=SYSTEM,
                                      messages=conversation("Review it."))
    assert answered.content[0].text == "Hello! I am the fake Kiro."
    assert answered.usage.cache_creation_input_tokens == answered.usage.cache_read_input_tokens == 0  # none said
    with client.messages.stream(model=REFUSING, max_tokens=200, system=SYSTEM,
                                messages=conversation("Again.")) as events:
        again = events.get_final_message()
    assert again.usage.cache_read_input_tokens == 0
    sent = fake_upstream.requests()
    assert [(r["status"], cache_points(r)) for r in sent] == [(400, [0, "current"]), (200, []), (200, [])]
    assert gw.log_text().count(f"sending none for {REFUSING}") == 1  # logged once, when learned


def test_openai_reports_the_cache_reads_kiro_reports(gw, fake_upstream):
    fake_upstream.script({"texts": ["ok"], "token_usage": {"uncachedInputTokens": 120, "cacheReadInputTokens": 3000,
                                                           "cacheWriteInputTokens": 0}})
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30) as sdk:
        result = sdk.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": LONG},
                                                                    {"role": "user", "content": "Review it."}])
    assert result.usage.prompt_tokens_details.cached_tokens == 3000
    assert result.usage.prompt_tokens == 3120  # OpenAI's prompt_tokens includes the cached ones
    assert cache_points(fake_upstream.requests()[-1]) == []  # OpenAI's API has no breakpoints; none are sent


def test_openai_streams_and_responses_report_them_too(gw, fake_upstream):
    usage = {"uncachedInputTokens": 50, "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 700}
    fake_upstream.script({"texts": ["ok"], "token_usage": usage}, {"texts": ["ok"], "token_usage": usage})
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30) as sdk:
        chunks = list(sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                  stream=True, stream_options={"include_usage": True}))
        response = sdk.responses.create(model=MODEL, input="Hi")
    streamed = chunks[-1].usage
    assert streamed.prompt_tokens_details.cached_tokens == 2000 and streamed.prompt_tokens == 2750
    assert response.usage.input_tokens_details.cached_tokens == 2000 and response.usage.input_tokens == 2750


def test_a_replica_learns_the_refusal_through_redis(settings, fake_upstream, redis_server, tmp_path):
    """Two replicas (own state directories, one Redis): what one learned, the other honours at once."""
    from dataclasses import replace

    from ki2api.app import create_app

    one, two = (create_app(replace(settings, redis_url=redis_server.url, state_dir=str(tmp_path / name)))
                for name in ("one", "two"))
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "claude-opus-4.6", "max_tokens": 100, "system": SYSTEM + SYSTEM,  # over opus's 4,096
            "messages": conversation("Review it.")}
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, cache_points="refuse")
    assert one.test_client().post("/v1/messages", headers=headers, json=body).status_code == 200
    assert [cache_points(r) for r in fake_upstream.requests()] == [[0, "current"], []]  # refused, then without
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    assert two.test_client().post("/v1/messages", headers=headers, json=body).status_code == 200
    assert [cache_points(r) for r in fake_upstream.requests()] == [[]]
