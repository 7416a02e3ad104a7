"""The Anthropic blueprint through Flask's test client, against the fake Kiro over real HTTP."""
import dataclasses
import json
import uuid
from types import SimpleNamespace

import pytest

from ki2api.app import create_app
from ki2api.translate import history
from tests.helpers.credentials import KEY
from tests.helpers.anthropic_schema import (parse_sse, validate_count, validate_error, validate_event,
                                            validate_message)
from tests.helpers.kiro_request import assert_well_formed
from tests.helpers.claude_code import BODY as CLAUDE_CODE, MESSAGES as CLAUDE_CODE_MESSAGES

BODY = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say hello"}]}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
X_API_KEY = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def tool_events(tool_id="tooluse_w1", name="get_weather", pieces=('{"city": ', '"Paris"}')):
    events = [{"event": "assistantResponseEvent", "payload": {"content": "Checking."}},
              {"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}}]
    events += [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "input": p}}
               for p in pieces]
    return events + [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "stop": True}}]


def checked_events(response):
    events = parse_sse(response.get_data(as_text=True))
    for name, data in events:
        validate_event(name, data)
    return events


def test_non_streamed_message(client, fake_upstream):
    fake_upstream.script({"texts": ["Hel", "lo", " there"], "context_usage": 2.0})
    response = client.post("/v1/messages", json=BODY, headers=X_API_KEY)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    validate_message(body)
    assert body["content"] == [{"type": "text", "text": "Hello there"}]
    assert (body["type"], body["role"], body["model"]) == ("message", "assistant", "claude-sonnet-4-5-20250929")
    assert body["stop_reason"] == "end_turn" and body["stop_sequence"] is None
    assert body["usage"]["input_tokens"] == 4000 and body["usage"]["output_tokens"] > 0
    sent = fake_upstream.requests()[-1]["body"]["conversationState"]
    assert sent["currentMessage"]["userInputMessage"]["content"] == "Say hello"
    assert sent["currentMessage"]["userInputMessage"]["modelId"] == "claude-sonnet-4.5"


def test_streamed_message_is_anthropics_event_sequence(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One", " two"]})
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    events = checked_events(response)
    assert [name for name, _ in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert [d["delta"]["text"] for n, d in events if n == "content_block_delta"] == ["One", " two"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_then_result_round_trip(client, auth, fake_upstream, stream):
    fake_upstream.script({"events": tool_events()}, {"texts": ["It is sunny."]})
    first = client.post("/v1/messages", headers=auth, json={**BODY, "stream": stream, "tools": [WEATHER],
                                                             "messages": [{"role": "user", "content": "Paris?"}]})
    if stream:
        events = checked_events(first)
        blocks = [d["content_block"] for n, d in events if n == "content_block_start"]
        assert [b["type"] for b in blocks] == ["text", "tool_use"]
        args = "".join(d["delta"]["partial_json"] for n, d in events
                       if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta")
        assert args == '{"city": "Paris"}'
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
        content = [{"type": "text", "text": "Checking."}, {**blocks[1], "input": {"city": "Paris"}}]
    else:
        body = first.get_json()
        validate_message(body)
        assert body["stop_reason"] == "tool_use"
        content = body["content"]
        assert content[1] == {"type": "tool_use", "id": "tooluse_w1", "name": "get_weather",
                              "input": {"city": "Paris"}}
    second = client.post("/v1/messages", headers=auth, json={**BODY, "tools": [WEATHER], "messages": [
        {"role": "user", "content": "Paris?"}, {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tooluse_w1", "content": "18 C"}]}]})
    assert second.get_json()["content"] == [{"type": "text", "text": "It is sunny."}]
    sent = fake_upstream.requests()[-1]["body"]["conversationState"]
    assert sent["history"][-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_w1", "name": "get_weather", "input": {"city": "Paris"}}]
    context = sent["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert context["toolResults"] == [{"toolUseId": "tooluse_w1", "content": [{"text": "18 C"}],
                                       "status": "success"}]
    assert [t["toolSpecification"]["name"] for t in context["tools"]] == ["get_weather"]


def test_a_claude_code_turn_streams_and_reaches_kiro_well_formed(client, fake_upstream):
    fake_upstream.script({"fixture": "14"})
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}
    response = client.post("/v1/messages?beta=true", headers=headers,
                           json={**CLAUDE_CODE, "messages": CLAUDE_CODE_MESSAGES})
    assert response.status_code == 200
    events = checked_events(response)
    assert [n for n, _ in events][-1] == "message_stop"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert_well_formed(fake_upstream.requests()[-1]["body"])


def test_long_tool_names_go_back_to_the_client_as_they_were(client, auth, fake_upstream):
    long_name = "mcp__filesystem__" + "read_a_file_with_a_really_long_descriptive_name_" * 2
    fake_upstream.script({"texts": ["x"]})
    client.post("/v1/messages", headers=auth, json={**BODY, "tools": [{**WEATHER, "name": long_name}]})
    upstream_name = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"][
        "userInputMessage"]["userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    assert upstream_name != long_name and len(upstream_name) <= 63
    fake_upstream.script({"events": tool_events(name=upstream_name)})
    body = client.post("/v1/messages", headers=auth, json={**BODY, "tools": [{**WEATHER, "name": long_name}]})
    assert body.get_json()["content"][1]["name"] == long_name


def test_thinking_comes_back_as_thinking_blocks(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["<thinking>\nTwo and two", " make four.</thinking>\n\n", "4"]})
    body = client.post("/v1/messages", headers=auth, json={
        **BODY, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048}}).get_json()
    validate_message(body)
    assert body["content"] == [{"type": "thinking", "thinking": "Two and two make four.", "signature": ""},
                               {"type": "text", "text": "4"}]
    system = fake_upstream.requests()[-1]["body"]["conversationState"]["history"][0]["userInputMessage"]
    assert "<max_thinking_length>2048</max_thinking_length>" in system["content"]


def test_stop_sequences_and_max_tokens(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["alpha be", "ta END gamma"]}, {"texts": ["word " * 20] * 10})
    stopped = client.post("/v1/messages", headers=auth, json={**BODY, "stop_sequences": ["END"]}).get_json()
    assert stopped["content"][0]["text"] == "alpha beta "
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "END")
    capped = client.post("/v1/messages", headers=auth, json={**BODY, "max_tokens": 30}).get_json()
    assert capped["stop_reason"] == "max_tokens"


def test_count_tokens_uses_the_usage_estimator_and_calls_nobody(client, auth, fake_upstream, monkeypatch):
    # Fixed conversation ids, so that the two estimates below see the very same Kiro request.
    monkeypatch.setattr(history, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(int=7)))
    short = client.post("/v1/messages/count_tokens", headers=auth,
                        json={"model": BODY["model"], "messages": BODY["messages"]})
    assert short.status_code == 200
    validate_count(short.get_json())
    longer = client.post("/v1/messages/count_tokens", headers=auth, json={
        "model": BODY["model"], "system": "You are terse.", "tools": [WEATHER],
        "messages": [{"role": "user", "content": "word, " * 400}]})
    assert longer.get_json()["input_tokens"] >= short.get_json()["input_tokens"] + 400
    assert fake_upstream.stats()["chat_requests"] == 0
    # The same estimate the usage falls back to when Kiro sends no context usage.
    fake_upstream.script({"texts": ["ok"], "context_usage": None})
    used = client.post("/v1/messages", headers=auth, json=BODY).get_json()["usage"]["input_tokens"]
    assert used == short.get_json()["input_tokens"]


@pytest.mark.parametrize("headers", [{"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}, X_API_KEY])
def test_either_key_header_is_accepted(client, fake_upstream, headers):
    assert client.post("/v1/messages", json=BODY, headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"}])
def test_wrong_or_missing_key_is_401_in_anthropic_shape(client, fake_upstream, headers):
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        response = client.post(path, json=BODY, headers=headers)
        assert response.status_code == 401
        validate_error(response.get_json())
        assert response.get_json()["error"]["type"] == "authentication_error"
        assert KEY not in response.get_data(as_text=True)
    assert fake_upstream.stats()["chat_requests"] == 0


def test_unknown_model_is_404_not_found(client, auth):
    response = client.post("/v1/messages", json={**BODY, "model": "gpt-4o"}, headers=auth)
    assert response.status_code == 404
    validate_error(response.get_json())
    assert response.get_json()["error"]["type"] == "not_found_error"
    assert "claude-sonnet-4-5" in response.get_json()["error"]["message"]


def test_routing_errors_under_messages_are_in_anthropic_shape(client, auth):
    wrong_method = client.get("/v1/messages", headers=auth)
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    validate_error(wrong_method.get_json())
    missing = client.post("/v1/messages/batches", json=BODY, headers=auth)
    assert missing.status_code == 404
    validate_error(missing.get_json())
    assert missing.get_json()["error"]["type"] == "not_found_error"
    elsewhere = client.get("/v1/nothing-here", headers=auth)  # the OpenAI side keeps OpenAI's envelope
    assert elsewhere.status_code == 404 and "type" not in elsewhere.get_json()


@pytest.mark.parametrize("data,content_type,status,kind", [
    ("{not json", "application/json", 400, "invalid_request_error"),
    ("[1, 2]", "application/json", 400, "invalid_request_error"),
    ("model=x", "application/x-www-form-urlencoded", 415, "invalid_request_error"),
    ("{\"pad\": \"" + "x" * 4096 + "\"}", "application/json", 413, "request_too_large"),
])
def test_bad_bodies_get_anthropic_errors(settings, auth, data, content_type, status, kind):
    client = create_app(dataclasses.replace(settings, max_body_bytes=2048)).test_client()
    response = client.post("/v1/messages", data=data, content_type=content_type, headers=auth)
    assert response.status_code == status
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-Id"]


MALFORMED = [
    {"max_tokens": None}, {"model": None}, {"messages": None}, {"stream": 1}, {"system": {"text": "x"}},
    {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://a/b"}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "aGVsbG8="}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 3}]}]},
    {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": []}]}]},
    {"messages": [{"role": "user", "content": [None]}]},
    {"tools": [{"name": "x", "input_schema": "object"}]},
    {"tool_choice": {"type": "tool"}},
    {"thinking": {"type": "enabled", "budget_tokens": "lots"}},
    {"stop_sequences": [None]},
]


@pytest.mark.parametrize("path,change", [("/v1/messages", c) for c in MALFORMED] + [
    ("/v1/messages/count_tokens", c) for c in MALFORMED if "max_tokens" not in c])
def test_malformed_input_is_a_clear_400_never_500(client, auth, fake_upstream, path, change):
    body = {**BODY, **change}
    response = client.post(path, json=body, headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    validate_error(response.get_json())
    assert response.get_json()["error"]["type"] == "invalid_request_error"
    assert fake_upstream.stats()["chat_requests"] == 0


@pytest.mark.parametrize("status,json,headers,expected,kind", [
    (400, {"message": "Improperly formed request.", "reason": None}, {}, 400, "invalid_request_error"),
    (400, {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}, {}, 400,
     "invalid_request_error"),
    (403, {"message": "Your account is suspended."}, {}, 403, "permission_error"),
    (429, {"__type": "ThrottlingException", "message": "Too many requests"}, {"Retry-After": "7"}, 429,
     "rate_limit_error"),
    (402, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}, {}, 429,
     "rate_limit_error"),
    (500, {"message": "boom"}, {}, 502, "api_error"),
    (503, {"message": "down"}, {}, 503, "overloaded_error"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_before_the_answer_keep_their_status(client, auth, fake_upstream, status, json, headers,
                                                             expected, kind, stream):
    fake_upstream.script({"status": status, "json": json, "headers": headers})
    response = client.post("/v1/messages", json={**BODY, "stream": stream}, headers=auth)
    assert response.status_code == expected
    validate_error(response.get_json())
    assert response.get_json()["error"]["type"] == kind
    if status == 429:
        assert response.headers["Retry-After"] == "7"


def test_exception_in_the_first_frames_still_gets_a_status(client, auth, fake_upstream):
    fake_upstream.script({"events": [{"exception": "InternalServerException", "message": "model crashed"}]})
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=auth)
    assert response.status_code == 502
    assert response.get_json()["error"]["type"] == "api_error"
    assert "model crashed" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("spec", [
    {"events": [{"event": "assistantResponseEvent", "payload": {"content": "partial"}},
                {"exception": "InternalServerException", "message": "model crashed"}]},
    {"texts": ["partial", " more", " text"], "fault": "reset_after", "fault_after": 2},
], ids=["exception-frame", "connection-reset"])
def test_failure_mid_stream_is_one_error_event_then_a_cut_short_end(client, auth, fake_upstream, spec):
    fake_upstream.script(spec)
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=auth)
    assert response.status_code == 200
    events = checked_events(response)
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert events[3][1]["delta"]["text"] == "partial"
    at = names.index("error")
    assert names.count("error") == 1 and events[at][1]["error"]["type"] == "api_error"
    # Then the open block is closed and the message ends as cut short, as the OpenAI side ends with "length".
    assert names[at + 1:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[at + 2][1]["delta"]["stop_reason"] == "max_tokens"


def test_pings_keep_a_silent_stream_alive_and_text_still_flows(settings, auth, fake_upstream):
    client = create_app(dataclasses.replace(settings, stream_keepalive=0.05)).test_client()
    fake_upstream.script({"texts": ["after", " the wait"], "hold_after": 1})  # holds after initial-response
    response = client.post("/v1/messages", json={**BODY, "stream": True}, headers=auth)
    assert response.status_code == 200
    received, pings, released = "", 0, False
    for chunk in response.response:
        received += chunk.decode() if isinstance(chunk, bytes) else chunk
        pings = received.count("event: ping")
        if pings >= 4 and not released:
            assert fake_upstream.release() == 1  # the upstream was still holding: the pings came in its silence
            released = True
    events = parse_sse(received)
    for name, data in events:
        validate_event(name, data)
    assert released
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "after the wait"
    assert [n for n, _ in events][-1] == "message_stop"


# --- input that could crash the translation or the upstream encode: a 400 naming the field, or sent clean ---

def raw(body: dict, **inserts: str) -> str:
    """`body` as JSON text with each `"@key"` string replaced by raw JSON text (deep values built as text)."""
    text = json.dumps(body)
    for key, value in inserts.items():
        text = text.replace(f'"@{key}"', value)
    return text


def deep_schema(levels: int) -> str:
    return '{"type": "object", "properties": {"a": ' * levels + '{"type": "string"}' + "}}" * levels


TOOL_TURNS = [{"role": "user", "content": "list"},
              {"role": "assistant",
               "content": [{"type": "tool_use", "id": "toolu_1", "name": "ls", "input": "@input"}]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]}]
TOO_DEEP = [
    (raw({**BODY, "messages": TOOL_TURNS}, input='{"a": ' + "[" * 800 + "]" * 800 + "}"),
     "messages[1].content[0].input: is nested more than"),
    (raw({**BODY, "tools": [{"name": "f", "input_schema": "@schema"}]}, schema=deep_schema(400)),
     "tools[0].input_schema: is nested more than"),
    (raw({**BODY, "messages": TOOL_TURNS}, input='{"n": 1e999}'), "out of range"),
    (raw({**BODY, "messages": TOOL_TURNS}, input='{"n": NaN}'), "NaN"),
    (raw({**BODY, "messages": TOOL_TURNS}, input='{"n": ' + "9" * 5000 + "}"), "digits"),
]


@pytest.mark.parametrize("path,stream", [("/v1/messages", False), ("/v1/messages", True),
                                         ("/v1/messages/count_tokens", False)])
@pytest.mark.parametrize("data,words", TOO_DEEP, ids=["input-800-deep", "schema-800-deep", "input-1e999",
                                                      "input-NaN", "input-5000-digits"])
def test_deep_huge_or_non_finite_json_is_a_400_naming_the_field(client, auth, fake_upstream, path, stream, data,
                                                                words):
    if stream:
        data = data[:-1] + ', "stream": true}'
    response = client.post(path, data=data, content_type="application/json", headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    validate_error(response.get_json())
    assert words in response.get_json()["error"]["message"]
    assert fake_upstream.stats()["chat_requests"] == 0


def test_nulls_in_history_tool_inputs_are_left_out_upstream(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["ok"]})
    data = raw({**BODY, "messages": TOOL_TURNS}, input='{"path": ".", "depth": null, "opts": {"all": null}}')
    response = client.post("/v1/messages", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    (use,) = fake_upstream.requests()[-1]["body"]["conversationState"]["history"][1]["assistantResponseMessage"][
        "toolUses"]
    assert use["input"] == {"path": ".", "opts": {}}
    assert fake_upstream.stats()["malformed"] == []


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_reach_kiro_as_replacement_characters(client, auth, fake_upstream, stream):
    fake_upstream.script({"texts": ["fine"]})
    data = ('{"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": %s, "system": "s\\udfff", '
            '"messages": [{"role": "user", "content": [{"type": "text", "text": "a\\ud800b \\ud83d\\ude00"}]}]}'
            % str(stream).lower())
    response = client.post("/v1/messages", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    if stream:
        text = "".join(d["delta"].get("text", "") for n, d in checked_events(response) if n == "content_block_delta")
    else:
        text = response.get_json()["content"][0]["text"]
    assert text == "fine"
    state = fake_upstream.requests()[-1]["body"]["conversationState"]
    assert state["currentMessage"]["userInputMessage"]["content"] == "a\ufffdb \U0001F600"  # a real pair is kept
    assert state["history"][0]["userInputMessage"]["content"] == "s\ufffd"
    counted = client.post("/v1/messages/count_tokens", data=data, content_type="application/json", headers=auth)
    assert counted.status_code == 200 and counted.get_json()["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_name_with_a_lone_surrogate_comes_back_with_a_replacement_character(client, auth, fake_upstream,
                                                                                   stream):
    data = ('{"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": %s, "messages": [{"role": "user",'
            ' "content": "x"}], "tools": [{"name": "get\\ud800it", "input_schema": {}}]}' % str(stream).lower())
    client.post("/v1/messages", data=data, content_type="application/json", headers=auth)
    upstream = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    fake_upstream.script({"events": tool_events(name=upstream)})
    response = client.post("/v1/messages", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200
    if stream:
        events = checked_events(response)
        assert "error" not in [n for n, _ in events]
        name = next(d["content_block"]["name"] for n, d in events
                    if n == "content_block_start" and d["content_block"]["type"] == "tool_use")
    else:
        name = next(b["name"] for b in response.get_json()["content"] if b["type"] == "tool_use")
    assert name == "get\ufffdit"


class Arrivals:
    """Answer parts as the stream's Heartbeat hands them on, in groups that arrived together: `waiting` while the
    current group has more. `taken` counts the parts handed on; an exception in a group is raised in its turn."""

    def __init__(self, *groups):
        self.groups = [list(group) for group in groups]
        self.taken = 0
        self.closed = False

    def __iter__(self):
        return self

    def __next__(self):
        while self.groups and not self.groups[0]:
            self.groups.pop(0)
        if not self.groups:
            raise StopIteration
        item = self.groups[0].pop(0)
        if isinstance(item, Exception):
            raise item
        self.taken += 1
        return item

    @property
    def waiting(self):
        return bool(self.groups and self.groups[0])

    def close(self):
        self.closed = True


def written(app, parts):
    """Run the stream's body over `parts`: (parts taken when each write went out, that write's events)."""
    from ki2api.routes.anthropic import _sse
    from ki2api.translate.anthropic_response import EventStream
    from ki2api.translate.answer import Answer

    with app.test_request_context("/v1/messages", method="POST", headers=X_API_KEY):
        app.preprocess_request()
        first = next(parts)
        return [(parts.taken, [(name, data.get("delta", {}).get("text") or data["type"])
                               for name, data in parse_sse(write)])
                for write in _sse(EventStream("m"), Answer(10, 200_000), parts, first)]


def test_parts_that_arrived_together_go_out_in_one_write_and_each_arrival_at_once(app):
    from ki2api.translate.answer import TextPart

    parts = Arrivals([TextPart("a"), TextPart("b"), TextPart("c")], [TextPart("d")], [None],
                     [TextPart("e"), TextPart("f")])
    writes = written(app, parts)
    assert [taken for taken, _ in writes] == [3, 4, 5, 7, 7]  # nothing waits for a part that has not arrived
    assert writes[0][1] == [("message_start", "message_start"), ("ping", "ping"),
                            ("content_block_start", "content_block_start"), ("content_block_delta", "a"),
                            ("content_block_delta", "b"), ("content_block_delta", "c")]
    assert [events for _, events in writes[1:4]] == [[("content_block_delta", "d")], [("ping", "ping")],
                                                     [("content_block_delta", "e"), ("content_block_delta", "f")]]
    assert writes[4][1] == [("content_block_stop", "content_block_stop"), ("message_delta", "message_delta"),
                            ("message_stop", "message_stop")]
    assert parts.closed


def test_parts_held_for_a_write_go_out_before_the_error_that_followed_them(app):
    from ki2api.errors import UpstreamUnavailable
    from ki2api.translate.answer import TextPart

    writes = written(app, Arrivals([TextPart("a"), TextPart("b"), UpstreamUnavailable("Kiro went away")]))
    assert len(writes) == 1
    shown = [event for event in writes[0][1] if event[0] in ("content_block_delta", "error", "message_stop")]
    assert shown == [("content_block_delta", "a"), ("content_block_delta", "b"), ("error", "error"),
                     ("message_stop", "message_stop")]
