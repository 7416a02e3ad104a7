"""The OpenAI blueprint through Flask's test client, against the fake Kiro over real HTTP."""
import json

import pytest

from tests.helpers.openai_schema import validate
from tests.helpers.openai_requests import BAD_MESSAGES, BAD_TOOL_REQUESTS

CHAT = {"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "Say hello"}]}


def sse_events(response):
    """The `data:` payloads of an SSE body, [DONE] kept as a string."""
    lines = [line[6:] for line in response.get_data(as_text=True).split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_models_are_listed_in_openai_format(client, auth):
    response = client.get("/v1/models", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    validate(body, "ListModelsResponse")
    ids = [m["id"] for m in body["data"]]
    for name in ("claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022", "claude-opus-4-7"):
        assert name in ids


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_wrong_or_missing_key_is_401_in_openai_shape(client, headers):
    response = client.get("/v1/models", headers=headers)
    assert response.status_code == 401
    validate(response.get_json(), "ErrorResponse")
    assert response.get_json()["error"]["code"] == "invalid_api_key"


def test_non_streamed_completion(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hel", "lo", " there"], "context_usage": 2.0})
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["model"] == "claude-sonnet-4-5-20250929"
    # 2% of a 200k window, as the upstream reported it.
    assert body["usage"]["prompt_tokens"] == 4000
    assert body["usage"]["completion_tokens"] > 0
    sent = fake_upstream.requests()[-1]["body"]
    assert sent["conversationState"]["currentMessage"]["userInputMessage"]["modelId"] == "claude-sonnet-4.5"
    assert sent["profileArn"].endswith("profile/EHGA3GRVQMUK")


def test_streamed_completion_has_role_deltas_finish_usage_and_done(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One", " two", " three"]})
    response = client.post("/v1/chat/completions", headers=auth,
                           json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:] if c["choices"]]
    assert [t for t in texts if t] == ["One", " two", " three"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_stop_sequence_cuts_the_answer(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["alpha be", "ta END gamma"]})
    body = client.post("/v1/chat/completions", json={**CHAT, "stop": ["END"]}, headers=auth).get_json()
    assert body["choices"][0]["message"]["content"] == "alpha beta "
    assert body["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_cuts_the_answer_with_length(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["word " * 20] * 10})
    body = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 30}, headers=auth).get_json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["message"]["content"]) < 10 * 100


def test_unknown_model_is_a_clear_error_naming_valid_ones(client, auth):
    response = client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=auth)
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "model_not_found" and "claude-sonnet-4-5" in error["message"]
    validate(response.get_json(), "ErrorResponse")


@pytest.mark.parametrize("data,content_type,status", [
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 400),
    ("model=x", "application/x-www-form-urlencoded", 415),
])
def test_bad_bodies_get_clear_errors(client, auth, data, content_type, status):
    response = client.post("/v1/chat/completions", data=data, content_type=content_type, headers=auth)
    assert response.status_code == status
    validate(response.get_json(), "ErrorResponse")


@pytest.mark.parametrize("status,body,headers,expected_status,expected_code", [
    (400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "message": "Input is too long.",
           "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}, {}, 400, "context_length_exceeded"),
    (400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "message": "Improperly formed request.",
           "reason": None}, {}, 400, None),
    (429, {"__type": "ThrottlingException", "message": "Too many requests, please wait before trying again.",
           "reason": "USER_REQUEST_RATE_EXCEEDED"}, {"Retry-After": "7"}, 429, "rate_limit_exceeded"),
    (402, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}, {}, 429, "insufficient_quota"),
    (500, {"message": "boom"}, {}, 502, None),
    (503, {"message": "down"}, {}, 503, None),
])
def test_upstream_errors_map_to_openai_errors(client, auth, fake_upstream, status, body, headers,
                                              expected_status, expected_code):
    fake_upstream.script({"status": status, "json": body, "headers": headers})
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == expected_status
    validate(response.get_json(), "ErrorResponse")
    assert response.get_json()["error"]["code"] == expected_code
    if headers:
        assert response.headers["Retry-After"] == "7"


def test_error_after_first_byte_is_one_sse_error_event(client, auth, fake_upstream):
    fake_upstream.script({"events": [
        {"event": "assistantResponseEvent", "payload": {"content": "partial"}},
        {"exception": "InternalServerException", "message": "model crashed"}]})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    events = sse_events(response)
    assert events[1]["choices"][0]["delta"]["content"] == "partial"
    # After the error event: a `length` finish (the answer was cut short) and [DONE], so the stream ends as usual.
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and "model crashed" in errors[0]["error"]["message"]
    validate(errors[0], "ErrorResponse")
    assert events[-2]["choices"][0]["finish_reason"] == "length" and events[-1] == "[DONE]"
    assert all("model crashed" not in json.dumps(e.get("choices", "")) for e in events if isinstance(e, dict))


def test_expired_token_is_refreshed_and_written_back(client, auth, fake_upstream, token_file):
    from tests.helpers.credentials import write_token_file
    write_token_file(token_file, expires_in=-60)
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200
    assert fake_upstream.stats()["refresh_calls"] == 1
    saved = json.loads(token_file.read_text())
    assert saved["accessToken"] != "aoaAAAAAtest-access-token-0001"
    assert saved["refreshToken"].startswith("aorAAAAAfake-refresh-")


def test_rejected_token_is_refreshed_once_and_the_request_retried(client, auth, fake_upstream):
    fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAtest-refresh-token-0001")
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert fake_upstream.stats()["chat_requests"] == 2


def test_health_reports_the_credential_without_secrets(client, token_file):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["credential"]["loaded"] is True
    assert body["credential"]["source"] == "file"
    assert body["credential"]["expires_at"]
    text = response.get_data(as_text=True)
    assert "test-access-token" not in text and "test-refresh-token" not in text


def test_unknown_route_is_an_openai_style_404(client, auth):
    response = client.get("/v1/nothing", headers=auth)
    assert response.status_code == 404
    validate(response.get_json(), "ErrorResponse")


# --- malformed tools, tool messages, images and thinking options: a clear 400, never a 500 ---

HTTP_BAD = [(extra, param) for extra, param in BAD_TOOL_REQUESTS] + [
    ({"messages": messages}, param) for messages, param in BAD_MESSAGES] + [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
      "tool_choice": 7}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 12}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,/9j/4AAQSkZJRgABAQ=="}}]}]},
     "messages[0].content[0].image_url.url"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("extra,param", HTTP_BAD)
def test_malformed_tool_and_image_input_is_a_400_before_any_upstream_call(client, auth, fake_upstream, extra,
                                                                          param, stream):
    response = client.post("/v1/chat/completions", headers=auth, json={**CHAT, "stream": stream, **extra})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    validate(body, "ErrorResponse")
    assert body["error"]["param"] == param and body["error"]["type"] == "invalid_request_error"
    assert fake_upstream.stats()["chat_requests"] == 0


def test_tool_call_stream_through_the_route_maps_names_back(client, auth, fake_upstream):
    long = "mcp__server__" + "z" * 70
    fake_upstream.script({"texts": ["x"]})
    client.post("/v1/chat/completions", headers=auth, json={
        **CHAT, "tools": [{"type": "function", "function": {"name": long}}]})
    upstream = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    fake_upstream.script({"events": [
        {"event": "toolUseEvent", "payload": {"name": upstream, "toolUseId": "tooluse_1"}},
        {"event": "toolUseEvent", "payload": {"input": "{}", "name": upstream, "toolUseId": "tooluse_1"}},
        {"event": "toolUseEvent", "payload": {"name": upstream, "stop": True, "toolUseId": "tooluse_1"}}]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        **CHAT, "stream": True, "tools": [{"type": "function", "function": {"name": long}}]})
    chunks = [e for e in sse_events(response) if e != "[DONE]"]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    names = [c["choices"][0]["delta"]["tool_calls"][0]["function"].get("name") for c in chunks
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert names[0] == long
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --- input that could crash the translation or the upstream encode: a 400 naming the field, or sent clean ---

ARGS_PARAM = "messages[1].tool_calls[0].function.arguments"


def with_call(arguments: str) -> str:
    """A raw body whose assistant message calls `ls` with `arguments` (JSON text), then its result."""
    call = {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": arguments}}
    return json.dumps({**CHAT, "messages": [{"role": "user", "content": "list"},
                                            {"role": "assistant", "content": None, "tool_calls": [call]},
                                            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}]})


def nested_schema(levels: int) -> str:
    """`parameters` nested `levels` schemas (twice as many JSON levels) deep, built as text: no recursion."""
    return '{"type": "object", "properties": {"a": ' * levels + '{"type": "string"}' + "}}" * levels


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("data,param,words", [
    (with_call("[" * 5000 + "]" * 5000), ARGS_PARAM, "nested"),
    (with_call('{"a": ' + "[" * 500 + "]" * 500 + "}"), ARGS_PARAM, "nested"),
    (with_call('{"n": ' + "9" * 5000 + "}"), ARGS_PARAM, "digits"),
    (with_call('{"n": NaN}'), ARGS_PARAM, "NaN"),
    (with_call('{"n": -Infinity}'), ARGS_PARAM, "Infinity"),
    (with_call('{"n": 1e999}'), ARGS_PARAM, "out of range"),
    (json.dumps(CHAT)[:-1] + ', "tools": [{"type": "function", "function": {"name": "f", "parameters": '
     + nested_schema(400) + "}}]}", "tools[0].function.parameters", "nested"),
], ids=["args-5000-deep", "args-500-deep", "args-5000-digits", "args-NaN", "args-Infinity", "args-1e999",
        "schema-800-deep"])
def test_deep_huge_or_non_finite_json_is_a_400_naming_the_field(client, auth, fake_upstream, data, param, words,
                                                                stream):
    if stream:
        data = data[:-1] + ', "stream": true}'
    response = client.post("/v1/chat/completions", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    validate(response.get_json(), "ErrorResponse")
    assert error["param"] == param and words in error["message"], error
    assert fake_upstream.stats()["chat_requests"] == 0


def test_nulls_in_history_tool_arguments_are_left_out_upstream(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["ok"]})
    data = with_call('{"path": ".", "depth": null, "opts": {"all": null, "sort": "name"}, "ids": [1, null]}')
    response = client.post("/v1/chat/completions", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    sent = fake_upstream.requests()[-1]["body"]
    (use,) = sent["conversationState"]["history"][1]["assistantResponseMessage"]["toolUses"]
    assert use["input"] == {"path": ".", "opts": {"sort": "name"}, "ids": [1]}
    assert fake_upstream.stats()["malformed"] == []


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_reach_kiro_as_replacement_characters(client, auth, fake_upstream, stream):
    fake_upstream.script({"texts": ["fine"]})
    data = ('{"model": "claude-sonnet-4-5", "stream": %s, "messages": [{"role": "system", "content": "s\\udfff"},'
            ' {"role": "user", "content": "a\\ud800b \\ud83d\\ude00"}]}' % str(stream).lower())
    response = client.post("/v1/chat/completions", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in sse_events(response)[:-1]
                   if e["choices"]) if stream else response.get_json()["choices"][0]["message"]["content"]
    assert text == "fine"
    state = fake_upstream.requests()[-1]["body"]["conversationState"]
    assert state["currentMessage"]["userInputMessage"]["content"] == "a\ufffdb \U0001F600"  # a real pair is kept
    assert state["history"][0]["userInputMessage"]["content"] == "s\ufffd"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_name_with_a_lone_surrogate_comes_back_with_a_replacement_character(client, auth, fake_upstream,
                                                                                   stream):
    data = ('{"model": "claude-sonnet-4-5", "stream": %s, "messages": [{"role": "user", "content": "x"}],'
            ' "tools": [{"type": "function", "function": {"name": "get\\ud800it"}}]}' % str(stream).lower())
    client.post("/v1/chat/completions", data=data, content_type="application/json", headers=auth)
    upstream = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    fake_upstream.script({"events": [
        {"event": "toolUseEvent", "payload": {"name": upstream, "toolUseId": "tooluse_1", "input": "{}"}},
        {"event": "toolUseEvent", "payload": {"name": upstream, "stop": True, "toolUseId": "tooluse_1"}}]})
    response = client.post("/v1/chat/completions", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200
    if stream:
        events = sse_events(response)
        assert not [e for e in events if isinstance(e, dict) and "error" in e], events
        name = next(e["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] for e in events[:-1]
                    if e["choices"] and e["choices"][0]["delta"].get("tool_calls"))
    else:
        name = response.get_json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
    assert name == "get\ufffdit"


@pytest.mark.parametrize("status", [401, 403])
def test_subscription_expired_is_refused_without_refreshing_the_token(client, auth, fake_upstream, token_file,
                                                                      status):
    before = token_file.read_text()
    fake_upstream.script({"status": status, "json": {"__type": "com.amazon.coral.service#AccessDeniedException",
                                                     "message": "Your Kiro subscription expired on 2026-05-01"}})
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["type"] == "permission_error"
    assert "subscription expired" in response.get_json()["error"]["message"]
    stats = fake_upstream.stats()
    assert stats["refresh_calls"] == 0 and stats["chat_requests"] == 1
    assert token_file.read_text() == before  # the login was not rotated


def test_an_expired_token_message_is_refreshed_once_and_retried(client, auth, fake_upstream):
    fake_upstream.script({"status": 403, "json": {"__type": "com.amazon.coral.service#AccessDeniedException",
                                                  "message": "The security token included in the request is expired"}})
    response = client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200, response.get_json()
    stats = fake_upstream.stats()
    assert stats["refresh_calls"] == 1 and stats["chat_requests"] == 2


def test_tools_differing_only_in_case_are_declared_once_each_and_keep_their_names(client, auth, fake_upstream):
    tools = [{"type": "function", "function": {"name": "Read"}}, {"type": "function", "function": {"name": "read"}}]
    fake_upstream.script({"texts": ["x"]})
    response = client.post("/v1/chat/completions", json={**CHAT, "tools": tools}, headers=auth)
    assert response.status_code == 200, response.get_json()  # the fake refused it as Kiro does before
    declared = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["tools"]
    upstream = [t["toolSpecification"]["name"] for t in declared]
    assert len({n.lower() for n in upstream}) == 2 and upstream[0] == "Read"
    fake_upstream.script({"events": [
        {"event": "toolUseEvent", "payload": {"name": upstream[1], "toolUseId": "tooluse_1", "input": "{}"}},
        {"event": "toolUseEvent", "payload": {"name": upstream[1], "stop": True, "toolUseId": "tooluse_1"}}]})
    body = client.post("/v1/chat/completions", json={**CHAT, "tools": tools}, headers=auth).get_json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "read"
