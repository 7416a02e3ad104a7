"""Prompt caching through Flask's test client against the fake Kiro: cache points sent, cache usage reported, and
the fallback when Kiro refuses cache points."""
import dataclasses

import pytest
import requests

from ki2api.app import create_app
from ki2api.upstream.cache_refusals import FIELD, REFUSAL_TTL, refuses, says_malformed, with_refusal
from tests.helpers.credentials import ACCESS, KEY, REFRESH
from tests.helpers.kiro_request import assert_well_formed

HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
LONG = "Answer as a careful reviewer of Python code and say why, in short sentences. " * 300  # ~4,000 tokens
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 100,
        "system": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Review this."}]}
MALFORMED = {"message": "Improperly formed request.", "reason": None}


def points(record):
    """Where a recorded Kiro request carried cache points: history indexes, and "current"."""
    state = record["body"]["conversationState"]
    found = [i for i, entry in enumerate(state["history"]) if "cachePoint" in next(iter(entry.values()))]
    return found + (["current"] if "cachePoint" in state["currentMessage"]["userInputMessage"] else [])


def test_a_system_breakpoint_is_written_then_read(client, fake_upstream):
    first = client.post("/v1/messages", headers=HEADERS, json=BODY).get_json()["usage"]
    second = client.post("/v1/messages", headers=HEADERS, json=BODY).get_json()["usage"]
    sent = fake_upstream.requests()
    assert [points(r) for r in sent] == [[0], [0]]  # on the message carrying the system prompt
    assert first["cache_creation_input_tokens"] > 1000 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    # input_tokens leaves the cache out (Anthropic's convention); the three add up to what the fake counted
    cached = sent[0]["cache_usage"]
    assert first["input_tokens"] == cached["uncachedInputTokens"] > 0


def test_without_breakpoints_nothing_is_sent_and_nothing_reported(client, fake_upstream):
    body = {**BODY, "system": LONG}
    usage = client.post("/v1/messages", headers=HEADERS, json=body).get_json()["usage"]
    assert points(fake_upstream.requests()[-1]) == []
    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0


def test_a_model_without_caching_gets_no_cache_point(client, fake_upstream):
    client.post("/v1/messages", headers=HEADERS, json={**BODY, "model": "deepseek-3.2"})
    assert points(fake_upstream.requests()[-1]) == []


def test_off_sends_none(settings, fake_upstream):
    off = create_app(dataclasses.replace(settings, cache_points="off")).test_client()
    assert off.post("/v1/messages", headers=HEADERS, json=BODY).status_code == 200
    assert points(fake_upstream.requests()[-1]) == []


def test_a_refused_cache_point_is_retried_without_and_remembered(app, client, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, cache_points="refuse")
    answered = client.post("/v1/messages", headers=HEADERS, json=BODY)
    assert answered.status_code == 200, answered.get_json()
    usage = answered.get_json()["usage"]
    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0  # Kiro said nothing
    first, retry = fake_upstream.requests()
    assert (first["status"], first["refused"], points(first)) == (400, "cache points refused (the fake's "
                                                                      "cache_points: refuse)", [0]) and (retry["status"], points(retry)) == (200, [])
    pool = app.extensions["ki2api"].client.pool
    assert refuses(pool.states(fresh=True), "claude-sonnet-4.5", 0.0)
    client.post("/v1/messages", headers={**HEADERS}, json={**BODY, "stream": True}).get_data()
    assert [points(r) for r in fake_upstream.requests()[2:]] == [[]]  # the next request sends none at once
    assert points_for_other_model(client, fake_upstream) == [0]  # only that model was marked
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).get_data(as_text=True)
    assert 'ki2api_cache_point_refusals_total{model="claude-sonnet-4.5"} 1.0' in metrics


def points_for_other_model(client, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    client.post("/v1/messages", headers=HEADERS, json={**BODY, "model": "claude-sonnet-4-6"})
    return points(fake_upstream.requests()[-1])


def test_another_worker_learns_it_from_the_shared_state(settings, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, cache_points="refuse")
    create_app(settings).test_client().post("/v1/messages", headers=HEADERS, json=BODY)
    other = create_app(settings).test_client()  # a second worker over the same state directory
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    assert other.post("/v1/messages", headers=HEADERS, json=BODY).status_code == 200
    assert [points(r) for r in fake_upstream.requests()] == [[]]


def test_when_the_retry_fails_too_nothing_is_remembered(app, client, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, cache_points="refuse")
    fake_upstream.script({"status": 400, "json": MALFORMED})  # answers the retry without cache points
    refused = client.post("/v1/messages", headers=HEADERS, json=BODY)
    assert refused.status_code == 400 and "Improperly formed request" in refused.get_json()["error"]["message"]
    assert [points(r) for r in fake_upstream.requests()] == [[0], []]
    assert not refuses(app.extensions["ki2api"].client.pool.states(fresh=True), "claude-sonnet-4.5", 0.0)


def test_other_refusals_are_not_retried(client, fake_upstream):
    fake_upstream.script({"status": 400, "json": {"message": "Input is too long.",
                                                  "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}})
    assert client.post("/v1/messages", headers=HEADERS, json=BODY).status_code == 400
    assert len(fake_upstream.requests()) == 1


def kiro_body(messages_with_points, tools_point=False):
    history = [entry for _ in range(2) for entry in (
        {"userInputMessage": {"content": "a", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}},
        {"assistantResponseMessage": {"content": "b"}})]
    body = {"conversationState": {"chatTriggerType": "MANUAL", "conversationId": "c", "history": history,
                                  "currentMessage": {"userInputMessage": {
                                      "content": "q", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}}}}
    messages = [next(iter(h.values())) for h in history] + [body["conversationState"]["currentMessage"]
                                                             ["userInputMessage"]]
    for i in messages_with_points:
        messages[i]["cachePoint"] = {"type": "default"}
    if tools_point:
        messages[-1]["userInputMessageContext"] = {"tools": [{"cachePoint": {"type": "default"}}]}
    return body


def test_the_fake_takes_only_the_published_shape():
    assert_well_formed(kiro_body([0, 1, 4]))
    wrong = kiro_body([4])
    wrong["conversationState"]["currentMessage"]["userInputMessage"]["cachePoint"] = {"type": "ephemeral"}
    extra = kiro_body([4])
    extra["conversationState"]["currentMessage"]["userInputMessage"]["cachePoint"]["ttl"] = "5m"
    misplaced = kiro_body([])
    misplaced["conversationState"]["cachePoint"] = {"type": "default"}
    for body in (wrong, extra, misplaced, kiro_body([], tools_point=True)):
        with pytest.raises(AssertionError):
            assert_well_formed(body)


def test_the_fake_refuses_more_than_four_points_and_a_tools_cache_point(fake_upstream):
    def post(body):
        return requests.post(f"{fake_upstream.url}/generateAssistantResponse", json=body, timeout=5,
                             headers={"Authorization": f"Bearer {ACCESS}"})
    five = post(kiro_body([0, 1, 2, 3, 4]))
    assert five.status_code == 400 and "at most 4 cache points" in five.json()["message"]
    assert post(kiro_body([], tools_point=True)).json()["message"] == "Improperly formed request."
    assert post(kiro_body([1, 2, 3, 4])).status_code == 200
    assert fake_upstream.stats()["malformed"] == ["5 cache points, more than 4", "a tools entry with keys ['cachePoint']"]
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH)  # both were this test's doing


def test_the_refusal_mark_and_its_wording():
    marks = with_refusal({FIELD: {"old": {"at": 0, "until": 1}}}, "m", 100.0)
    assert marks == {"m": {"at": 100.0, "until": 100.0 + REFUSAL_TTL}}  # the expired mark is dropped
    assert refuses({"a": {FIELD: marks}}, "m", 200.0) and not refuses({"a": {FIELD: marks}}, "m", 1e9)
    assert not refuses({"a": {FIELD: marks}}, "other", 200.0) and not refuses({}, "m", 0.0)
    assert says_malformed(400, MALFORMED) and says_malformed(400, {"Message": "Improperly formed request"})
    assert not says_malformed(400, {"message": "Input is too long."}) and not says_malformed(500, MALFORMED)
