"""Keep-alives under gunicorn's gevent worker (STREAM_KEEPALIVE 0.2 s, Kiro waiting 1.2 s before its answer), read
by the official SDKs: `: keep-alive` comments in the OpenAI-side streams and leading whitespace before a slow whole
answer's JSON are both taken as they should be."""
from __future__ import annotations

import anthropic
import openai
import pytest
import requests

from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration
SLOW = {"texts": ["after", " the wait"], "first_delay": 1.2}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(start_gateway):
    return start_gateway(STREAM_KEEPALIVE="0.2")


def openai_sdk(gw):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)


def anthropic_sdk(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": MESSAGES}),
    ("/v1/responses", {"model": "claude-sonnet-4-5", "input": "hi"}),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": MESSAGES}),
])
def test_the_wire_carries_spaces_then_the_json(gw, fake_upstream, path, body):
    fake_upstream.script(SLOW)
    response = requests.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers.get("Transfer-Encoding") == "chunked"
    spaces = len(response.text) - len(response.text.lstrip(" "))
    assert spaces >= 3, response.text[:80]  # about one per 0.2 s of Kiro's 1.2 s wait
    assert "after the wait" in response.text and response.json()


def test_openai_sdk_takes_a_padded_whole_answer(gw, fake_upstream):
    fake_upstream.script(SLOW)
    result = openai_sdk(gw).chat.completions.create(model="claude-sonnet-4-5", messages=MESSAGES)
    assert result.choices[0].message.content == "after the wait" and result.usage.completion_tokens > 0
    fake_upstream.script(SLOW)
    response = openai_sdk(gw).responses.create(model="claude-sonnet-4-5", input="hi")
    assert response.output_text == "after the wait" and response.status == "completed"


def test_anthropic_sdk_takes_a_padded_whole_answer(gw, fake_upstream):
    fake_upstream.script(SLOW)
    message = anthropic_sdk(gw).messages.create(model="claude-sonnet-4-5-20250929", max_tokens=50, messages=MESSAGES)
    assert message.content[0].text == "after the wait" and message.stop_reason == "end_turn"


def test_openai_sdk_streams_skip_the_keep_alive_comments(gw, fake_upstream):
    fake_upstream.script(SLOW)
    raw = requests.post(gw.url + "/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": MESSAGES,
                                                               "stream": True},
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    assert raw.count(": keep-alive\n\n") >= 3 and raw.index(": keep-alive") < raw.index("after")
    fake_upstream.script(SLOW)
    chunks = list(openai_sdk(gw).chat.completions.create(model="claude-sonnet-4-5", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "after the wait"
    fake_upstream.script(SLOW)
    events = list(openai_sdk(gw).responses.create(model="claude-sonnet-4-5", input="hi", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "after the wait"
