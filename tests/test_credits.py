"""The credits Kiro charges (meteringEvent): in usage, the X-Kiro-Credits header, the log line, /metrics, the status
page, and subtracted from the account's remaining credits until the next poll (observability/credits.py and the
paths that carry the figure)."""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ki2api.app import create_app
from ki2api.translate.answer import Answer
from ki2api.translate.anthropic_response import usage_dict as anthropic_usage
from ki2api.translate.openai_response import usage_dict as openai_usage
from ki2api.observability.credits import credits_text
from ki2api.upstream.events import Metering, TextDelta, iter_events
from ki2api.web.auth import key_label
from tests.helpers.accounts import fake_accounts, write_token_dir
from tests.helpers.anthropic_schema import parse_sse, validate_event, validate_message
from tests.helpers.credentials import KEY
from tests.helpers.fixtures import capture_stream
from tests.helpers.openai_schema import validate

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Say hello"}]}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Say hello"}]}
# The captured answer 06 ends with meteringEvent {"unit": "credit", "usage": 0.07308558275290215}.
CAPTURED_06_CREDITS = 0.073086


def answer_of(events) -> Answer:
    answer = Answer(prompt_estimate=10, context_window=200_000)
    list(answer.parts(events))
    return answer


def call(client, method, path, **kwargs):
    """One request whose response is read and closed, as a WSGI server would (the summary is taken on close)."""
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def data_events(text: str) -> list:
    lines = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def scrape(client, auth) -> dict[tuple[str, tuple], float]:
    response = call(client, "GET", "/metrics", headers=auth)
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


# -- the figure, from the events to the usage objects ------------------------------------------------------------

def test_the_captured_answers_credits_reach_the_usage():
    answer = answer_of(iter_events([capture_stream("06")]))
    assert answer.usage.credits == CAPTURED_06_CREDITS
    assert openai_usage(answer.usage)["kiro_credits"] == CAPTURED_06_CREDITS
    assert anthropic_usage(answer.usage)["kiro_credits"] == CAPTURED_06_CREDITS


def test_credits_add_up_and_other_units_are_not_credits():
    events = [TextDelta("hi"), Metering(0.25, "credit"), Metering(7.0, "request"), Metering(0.5, "credits")]
    assert answer_of(events).usage.credits == 0.75


def test_no_metering_event_means_no_figure_at_all():
    answer = answer_of([TextDelta("hi")])
    assert answer.usage.credits is None
    assert "kiro_credits" not in openai_usage(answer.usage) and "kiro_credits" not in anthropic_usage(answer.usage)


@pytest.mark.parametrize("value,text", [(0.036, "0.036"), (1.5, "1.5"), (2.0, "2"), (0.0000004, "0"),
                                        (0.07308558275290215, "0.073086")])
def test_the_header_is_plain_decimal_text(value, text):
    assert credits_text(value) == text


# -- OpenAI ------------------------------------------------------------------------------------------------------

def test_a_whole_openai_answer_has_credits_in_usage_and_the_header(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hello"], "credits": 0.036})
    response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    body = response.get_json()
    validate(body, "CreateChatCompletionResponse")
    assert body["usage"]["kiro_credits"] == 0.036
    assert response.headers["X-Kiro-Credits"] == "0.036"


def test_the_last_streamed_usage_chunk_has_the_credits(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One", " two"], "credits": 0.25})
    response = call(client, "POST", "/v1/chat/completions", headers=auth,
                    json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    chunks = data_events(response.get_data(as_text=True))
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["kiro_credits"] == 0.25
    assert all(chunk["usage"] is None for chunk in chunks[:-2])
    assert "X-Kiro-Credits" not in response.headers  # the headers left before Kiro said what it charged


def test_without_include_usage_a_stream_tells_no_usage_and_no_credits(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One"], "credits": 0.25})
    response = call(client, "POST", "/v1/chat/completions", headers=auth, json={**CHAT, "stream": True})
    assert "kiro_credits" not in response.get_data(as_text=True) and "usage" not in response.get_data(as_text=True)


def test_no_metering_from_kiro_means_no_header_and_no_field(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hello"], "context_usage": None})
    response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200 and "kiro_credits" not in response.get_json()["usage"]
    assert "X-Kiro-Credits" not in response.headers


def test_an_answer_cut_at_a_stop_sequence_has_no_invented_figure(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["one STOP two"], "credits": 0.25})
    response = call(client, "POST", "/v1/chat/completions", json={**CHAT, "stop": ["STOP"]}, headers=auth)
    assert response.get_json()["choices"][0]["message"]["content"] == "one "
    assert "kiro_credits" not in response.get_json()["usage"] and "X-Kiro-Credits" not in response.headers


def test_browsers_may_read_the_header(settings, fake_upstream):
    client = create_app(replace(settings, cors_origins=("https://app.example",))).test_client()
    fake_upstream.script({"texts": ["Hello"]})
    response = call(client, "POST", "/v1/chat/completions", json=CHAT,
                    headers={"Authorization": f"Bearer {KEY}", "Origin": "https://app.example"})
    assert "X-Kiro-Credits" in response.headers["Access-Control-Expose-Headers"]


# -- Anthropic ---------------------------------------------------------------------------------------------------

def test_a_whole_anthropic_message_has_credits_in_usage_and_the_header(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hello"], "credits": 0.5})
    response = call(client, "POST", "/v1/messages", json=MESSAGES, headers=auth)
    body = response.get_json()
    message = validate_message(body)
    assert body["usage"]["kiro_credits"] == 0.5 and message.usage.model_extra == {"kiro_credits": 0.5}
    assert response.headers["X-Kiro-Credits"] == "0.5"


def test_a_streamed_anthropic_message_has_the_credits_in_its_final_usage(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One", " two"], "credits": 0.125})
    response = call(client, "POST", "/v1/messages", json={**MESSAGES, "stream": True}, headers=auth)
    events = parse_sse(response.get_data(as_text=True))
    for name, data in events:
        validate_event(name, data)
    [delta] = [data for name, data in events if name == "message_delta"]
    assert delta["usage"]["kiro_credits"] == 0.125


# -- per request, per account and per key: the log line, /metrics, the status page --------------------------------

def test_credits_are_logged_counted_by_account_and_key_and_shown(client, auth, fake_upstream, caplog):
    caplog.set_level(logging.INFO)
    fake_upstream.script({"texts": ["a"], "credits": 0.25}, {"texts": ["b"], "credits": 0.5},
                         {"texts": ["c"], "context_usage": None})
    whole = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    streamed = call(client, "POST", "/v1/messages", json={**MESSAGES, "stream": True}, headers=auth)
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    lines = [r.fields for r in caplog.records if r.name == "ki2api.request" and r.fields["route"].startswith("/v1")]
    assert [line.get("credits") for line in lines] == [0.25, 0.5, None]
    label = key_label(KEY)
    assert {line["key"] for line in lines} == {label}
    account = lines[0]["account"]

    samples = scrape(client, auth)
    assert samples[("ki2api_kiro_credits_total", (("account", account), ("key", label)))] == 0.75

    data = call(client, "GET", "/dashboard/data", headers=auth).get_json()
    assert data["totals"]["credits"] == {"accounts": {account: 0.75}, "keys": {label: 0.75}}
    recent = {r["request_id"]: r for r in data["recent_requests"]}
    assert recent[whole.headers["X-Request-Id"]]["credits"] == 0.25
    assert recent[streamed.headers["X-Request-Id"]]["credits"] == 0.5
    assert KEY not in json.dumps(data) and KEY not in repr(samples)


def test_the_key_label_is_short_stable_and_not_the_key():
    label = key_label(KEY)
    assert label == key_label(KEY) and label.startswith("key-") and len(label) == 12
    assert KEY not in label and key_label(KEY + "x") != label


# -- the account's remaining credits between polls ---------------------------------------------------------------

def remaining(client) -> float:
    [row] = call(client, "GET", "/health").get_json()["accounts"]
    return row["usage"]["remaining"]


def test_remaining_credits_drop_by_what_answers_cost_until_the_next_poll(app, auth, fake_upstream):
    client = app.test_client()
    poller = app.extensions["ki2api"].usage
    assert poller.poll_once() == 1
    assert remaining(client) == 41.32  # the fake Kiro's getUsageLimits: 50 - 8.68
    fake_upstream.script({"texts": ["a"], "credits": 0.25}, {"texts": ["b"], "credits": 0.5})
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    call(client, "POST", "/v1/messages", json={**MESSAGES, "stream": True}, headers=auth)
    assert remaining(client) == 40.57
    samples = scrape(client, auth)
    assert [v for (name, _), v in samples.items() if name == "ki2api_account_credits_remaining"] == [40.57]
    again = app.extensions["ki2api"].usage  # the next poll: Kiro's own figure replaces the lowered one
    assert again.poll_once() == 1
    assert remaining(client) == 41.32


def test_after_a_failover_the_account_that_answered_is_charged(settings, tmp_path, fake_upstream, auth):
    first_frame_throttle = {"events": [{"exception": "ThrottlingException", "message": "slow down"}]}
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": first_frame_throttle}))
    write_token_dir(tmp_path / "pool", "a", "b")
    app = create_app(replace(settings, token_dir=str(tmp_path / "pool")))
    client = app.test_client()
    answered = 0
    while fake_upstream.stats()["accounts"]["a"]["chat_requests"] == 0 and answered < 60:
        response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
        assert response.headers["X-Kiro-Credits"] == "0.01"  # b's answer, whichever account was tried first
        answered += 1
    assert fake_upstream.stats()["accounts"]["a"]["chat_requests"] == 1
    counted = app.extensions["ki2api"].pool.counts()
    assert counted["b"]["credits_micro"] == 10_000 * answered and "credits_micro" not in counted.get("a", {})
    credits = {labels: v for (name, labels), v in scrape(client, auth).items() if name == "ki2api_kiro_credits_total"}
    assert credits == {(("account", "b"), ("key", key_label(KEY))): pytest.approx(0.01 * answered)}
