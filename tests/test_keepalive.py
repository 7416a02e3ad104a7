"""Keep-alives while Kiro is silent (STREAM_KEEPALIVE): `: keep-alive` comments on the OpenAI-side streams (chat and
Responses), leading whitespace before a slow whole answer's JSON on every API; a failure within the interval
keeps its real status. Kiro's silences are the fake's holds, released once the keep-alives are seen."""
import dataclasses
import json

import pytest

from ki2api.app import create_app
from tests.helpers.anthropic_schema import parse_sse, validate_event
from tests.helpers.openai_schema import validate

INTERVAL = 0.05
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "claude-sonnet-4-5", "input": "hi"}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
PATHS = {"/v1/chat/completions": CHAT, "/v1/responses": RESPONSES, "/v1/messages": MESSAGES}


@pytest.fixture
def quick(settings):
    """A client whose keep-alive interval is 50 ms."""
    return create_app(dataclasses.replace(settings, stream_keepalive=INTERVAL)).test_client()


def read_releasing(response, fake_upstream, marker, count=3):
    """The whole body, releasing Kiro's held answer once `count` markers came (so they came in its silence)."""
    received, released = "", False
    for chunk in response.response:
        received += chunk.decode() if isinstance(chunk, bytes) else chunk
        if not released and received.count(marker) >= count:
            assert fake_upstream.release() == 1  # Kiro was still holding: the markers came during its silence
            released = True
    assert released, received
    return received


def data_lines(text):
    return [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.mark.parametrize("hold_after", [1, 2])  # before the answer's first event; between two text events
def test_a_silent_chat_stream_gets_keep_alive_comments_and_the_text_still_flows(quick, auth, fake_upstream,
                                                                              hold_after):
    fake_upstream.script({"texts": ["after", " the wait"], "hold_after": hold_after})
    response = quick.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    received = read_releasing(response, fake_upstream, ": keep-alive\n\n")
    blocks = [block for block in received.split("\n\n") if block]
    assert all(block == ": keep-alive" or block.startswith("data: ") for block in blocks), blocks
    chunks = data_lines(received)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "after the wait"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and received.endswith("data: [DONE]\n\n")
    first_text = received.index('"after"')
    assert received.index(": keep-alive") < first_text if hold_after == 1 else received.count(": keep-alive") >= 3


def test_a_silent_responses_stream_gets_keep_alive_comments(quick, auth, fake_upstream):
    fake_upstream.script({"texts": ["after", " the wait"], "hold_after": 1})
    response = quick.post("/v1/responses", json={**RESPONSES, "stream": True}, headers=auth)
    assert response.status_code == 200
    received = read_releasing(response, fake_upstream, ": keep-alive\n\n")
    events = data_lines(received)
    assert [e["type"] for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "after the wait"
    assert received.index(": keep-alive") < received.index("response.output_text.delta")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_failure_within_the_interval_keeps_its_status(settings, auth, fake_upstream, path):
    client = create_app(dataclasses.replace(settings, stream_keepalive=2.0)).test_client()
    for stream in (True, False):
        fake_upstream.script({"events": [{"exception": "InternalServerException", "message": "boom"}],
                              "first_delay": 0.1})
        response = client.post(path, json={**PATHS[path], "stream": stream}, headers=auth)
        assert response.status_code == 502, (stream, response.get_data(as_text=True))
        assert "boom" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_quick_whole_answer_is_sent_as_before(quick, auth, fake_upstream, path):
    fake_upstream.script({"texts": ["quick"]})
    response = quick.post(path, json=PATHS[path], headers=auth)
    assert response.status_code == 200
    assert response.content_length == len(response.get_data())  # not padded: its length known up front
    assert response.get_data(as_text=True).startswith("{")
    assert response.headers["X-Kiro-Credits"] == "0.01"


def whole_text(path, body):
    if path == "/v1/chat/completions":
        return body["choices"][0]["message"]["content"]
    if path == "/v1/responses":
        return body["output"][0]["content"][0]["text"]
    return body["content"][0]["text"]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_slow_whole_answer_is_padded_with_leading_whitespace(quick, auth, fake_upstream, path):
    fake_upstream.script({"texts": ["after", " the wait"], "hold_after": 2})  # silent after the first text
    response = quick.post(path, json=PATHS[path], headers=auth)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["X-Accel-Buffering"] == "no"  # nginx passes each space on
    received = read_releasing(response, fake_upstream, " ")
    body = json.loads(received)  # leading whitespace is valid JSON
    assert received[:3] == "   " and received.lstrip(" ").startswith("{")
    assert whole_text(path, body) == "after the wait"
    if path == "/v1/responses":
        stored = quick.get(f"/v1/responses/{body['id']}", headers=auth)
        assert stored.status_code == 200 and stored.get_json()["status"] == "completed"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_whole_answer_failing_after_the_padding_ends_with_the_error_object(quick, auth, fake_upstream, path):
    fake_upstream.script({"texts": ["a", "b", "c"], "hold_after": 2, "fault": "reset_after", "fault_after": 3})
    response = quick.post(path, json=PATHS[path], headers=auth)
    assert response.status_code == 200  # already sent with the first space
    body = json.loads(read_releasing(response, fake_upstream, " "))
    error = body["error"]
    assert (body["type"] == "error") if path == "/v1/messages" else ("code" in error)
    assert "broke mid-answer" in error["message"]


def test_a_talkative_but_slow_whole_answer_is_padded_too(quick, auth, fake_upstream):
    """Kiro never silent for the interval, but the whole answer takes longer: spaces all the same."""
    fake_upstream.script({"texts": ["x"] * 12, "pace": INTERVAL / 2})
    response = quick.post("/v1/chat/completions", json=CHAT, headers=auth)
    text = response.get_data(as_text=True)
    assert text.startswith("  ") and json.loads(text)["choices"][0]["message"]["content"] == "x" * 12


def test_anthropic_stream_keep_alives_are_its_own_ping_events(quick, auth, fake_upstream):
    """STREAM_KEEPALIVE governs the Anthropic stream too, in Anthropic's words: `ping` events, no comments."""
    fake_upstream.script({"texts": ["a", "b"], "pace": INTERVAL * 4})
    response = quick.post("/v1/messages", json={**MESSAGES, "stream": True}, headers=auth)
    text = response.get_data(as_text=True)
    assert ": keep-alive" not in text
    events = parse_sse(text)
    for name, data in events:
        validate_event(name, data)
    names = [name for name, _ in events]
    assert names.count("ping") >= 3  # the one after message_start, then at least one in each silence
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "ab"


@pytest.mark.parametrize("stream", [True, False])
def test_keep_alives_end_at_the_read_timeout(settings, auth, fake_upstream, stream):
    """A Kiro that stalls for good still ends the answer after UPSTREAM_READ_TIMEOUT, keep-alives or not."""
    client = create_app(dataclasses.replace(settings, stream_keepalive=INTERVAL, read_timeout=0.5)).test_client()
    fake_upstream.script({"texts": ["partial", " never"], "fault": "stall", "fault_after": 2})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=auth)
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and text.count(" ") >= 3
    if stream:
        assert ": keep-alive" in text and '"upstream_timeout"' in text and text.endswith("data: [DONE]\n\n")
    else:
        assert json.loads(text)["error"]["type"] == "upstream_timeout"
