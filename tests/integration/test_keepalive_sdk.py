"""Keep-alives under gunicorn's gevent worker (STREAM_KEEPALIVE 0.2 s, Kiro waiting 1.2 s before its answer), read
by the official SDKs: `: keep-alive` comments in the OpenAI-side streams, `ping` events in the Anthropic stream and
leading whitespace before a slow whole answer's JSON are all taken as they should be. SSE_PING_INTERVAL, the
former name, still sets the one interval of them all."""
from __future__ import annotations

import anthropic
import openai
import pytest
import requests

from tests.helpers.anthropic_schema import parse_sse, validate_event
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


def test_openai_sdk_takes_a_padded_compaction(gw, fake_upstream):
    fake_upstream.script(SLOW)
    raw = requests.post(gw.url + "/v1/responses/compact", json={"model": "claude-sonnet-4-5", "input": MESSAGES},
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    assert len(raw) - len(raw.lstrip(" ")) >= 3  # a long summary keeps the connection alive like any whole answer
    fake_upstream.script(SLOW)
    compacted = openai_sdk(gw).responses.compact(model="claude-sonnet-4-5", input=MESSAGES)
    [item] = compacted.output
    assert item.type == "compaction" and item.encrypted_content
    follow = openai_sdk(gw).responses.create(model="claude-sonnet-4-5", input=[item.model_dump(), *MESSAGES])
    assert follow.status == "completed"
    current = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"]
    assert "after the wait" in current["content"]  # the summary Kiro wrote slowly is what the next turn carries


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


def anthropic_stream(gw, fake_upstream, pings_before_release: int = 0) -> str:
    """A raw Anthropic stream; with `pings_before_release`, Kiro holds after its first frame until that many
    `ping` events have come, then answers."""
    fake_upstream.script({"texts": ["after", " the wait"], "hold_after": 1} if pings_before_release else SLOW)
    response = requests.post(f"{gw.url}/v1/messages", stream=True, timeout=30,
                             headers={"x-api-key": KEY, "Connection": "close"},
                             json={"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True,
                                   "messages": MESSAGES})
    assert response.status_code == 200
    body, released = "", not pings_before_release
    for line in response.iter_lines(decode_unicode=True):
        body += line + "\n"
        if not released and body.count("event: ping") >= pings_before_release:
            assert fake_upstream.release() == 1  # the pings came while Kiro was holding
            released = True
    assert released
    return body


def test_the_anthropic_stream_pings_while_kiro_is_silent(gw, fake_upstream):
    body = anthropic_stream(gw, fake_upstream, pings_before_release=3)
    assert ": keep-alive" not in body  # Anthropic's own keep-alive, not the OpenAI side's comment
    events = parse_sse(body)
    for name, data in events:
        validate_event(name, data)
    assert [n for n, _ in events][-1] == "message_stop"
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "after the wait"
    fake_upstream.script(SLOW)
    with anthropic_sdk(gw).messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "after the wait"


def test_the_former_sse_ping_interval_still_sets_every_keep_alive(start_gateway, fake_upstream):
    old = start_gateway(SSE_PING_INTERVAL="0.2")
    assert "SSE_PING_INTERVAL is deprecated: set STREAM_KEEPALIVE instead" in old.log_text()
    fake_upstream.script(SLOW)
    raw = requests.post(old.url + "/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": MESSAGES,
                                                                "stream": True},
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=30).text
    assert raw.count(": keep-alive\n\n") >= 3  # about one per 0.2 s of Kiro's 1.2 s wait, not one per 15 s
    assert anthropic_stream(old, fake_upstream).count("event: ping") >= 3
