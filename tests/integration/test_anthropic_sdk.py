"""ki2api's Anthropic Messages API under gunicorn with gevent workers, driven by the official anthropic SDK."""
from __future__ import annotations

import time

import anthropic
import pytest
import requests

from tests.helpers.credentials import KEY
from tests.helpers.anthropic_schema import parse_sse

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-6"  # Kiro claude-sonnet-4.6, a 1M-token window
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
INTROSPECT = {"name": "introspect", "description": "Look up Kiro's own documentation",
              "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
                               "additionalProperties": False},
              "cache_control": {"type": "ephemeral"}}


@pytest.fixture
def client(gw):
    """The SDK pointed at ki2api; closed after the test, so no idle keep-alive outlives it."""
    with sdk(gw) as sdk_client:
        yield sdk_client


def sdk(gateway, key: str | None = KEY, **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=30, **kwargs)


def tool_frames(calls: list[tuple[str, str, str]], text: str = "Let me check.") -> list[dict]:
    events = [{"event": "assistantResponseEvent", "payload": {"content": text}}]
    for tool_id, name, args in calls:
        events.append({"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}})
        events += [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "input": args[i:i + 7]}}
                   for i in range(0, len(args), 7)]
        events.append({"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "stop": True}})
    return events


def upstream_state(fake) -> dict:
    return fake.requests()[-1]["body"]["conversationState"]


def test_create_message(client, fake_upstream):
    fake_upstream.script({"texts": ["The answer", " is 42."]})
    message = client.messages.create(
        model=MODEL, max_tokens=256, metadata={"user_id": "u-1"}, extra_body={"temperature": 0.3, "top_k": 5},
        system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Meaning of life?"}])
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "The answer is 42."
    assert message.stop_reason == "end_turn" and message.model == MODEL
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    state = upstream_state(fake_upstream)
    assert state["history"][0]["userInputMessage"]["content"] == "Be terse."
    assert state["currentMessage"]["userInputMessage"]["content"] == "Meaning of life?"


def test_stream_text_arrives_while_the_upstream_is_still_holding(client, fake_upstream):
    fake_upstream.script({"texts": [f"piece{i} " for i in range(6)], "hold_after": 2})
    received = []
    with client.messages.stream(model=MODEL, max_tokens=256,
                                 messages=[{"role": "user", "content": "hi"}]) as stream:
        for text in stream.text_stream:
            received.append(text)
            if len(received) == 1:
                assert fake_upstream.stats()["held_streams"] == 1  # nothing was collected before forwarding
                fake_upstream.release()
        final = stream.get_final_message()
    assert received == [f"piece{i} " for i in range(6)]
    assert final.content[0].text == "".join(received) and final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 15000  # the fake's 1.5 % of a 1M window


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_round_trip_on_the_real_captured_tool_call(client, fake_upstream, streamed):
    fake_upstream.script({"fixture": "14"}, {"texts": ["The percentage is the context window usage."]})
    ask = {"model": MODEL, "max_tokens": 1024, "tools": [INTROSPECT],
           "messages": [{"role": "user", "content": "What is the percentage at the bottom?"}]}
    if streamed:
        with client.messages.stream(**ask) as stream:
            kinds = [event.type for event in stream]
            first = stream.get_final_message()
        assert "input_json" in kinds
    else:
        first = client.messages.create(**ask)
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert (call.type, call.name, call.id) == ("tool_use", "introspect", "tooluse_QSfOosa0r0YluOOQ0MolaE")
    assert call.input["query"] == "percentage display bottom bar context window usage"
    final = client.messages.create(**{**ask, "messages": ask["messages"] + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "It shows context usage."}]}]}]})
    assert final.content[0].text == "The percentage is the context window usage."
    state = upstream_state(fake_upstream)
    assert state["history"][-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": call.id, "name": "introspect", "input": call.input}]
    context = state["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert context["toolResults"][0]["toolUseId"] == call.id and context["toolResults"][0]["status"] == "success"


def test_parallel_tool_calls_and_an_error_result(client, fake_upstream):
    calls = [("tooluse_a", "get_weather", '{"city": "Paris"}'), ("tooluse_b", "get_weather", '{"city": "Oslo"}')]
    fake_upstream.script({"events": tool_frames(calls)}, {"texts": ["Paris is sunny; Oslo is unknown."]})
    tool = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ask = {"model": MODEL, "max_tokens": 512, "tools": [tool], "tool_choice": {"type": "any"},
           "messages": [{"role": "user", "content": "Weather in Paris and Oslo?"}]}
    with client.messages.stream(**ask) as stream:
        first = stream.get_final_message()
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.id, u.input) for u in uses] == [("tooluse_a", {"city": "Paris"}), ("tooluse_b", {"city": "Oslo"})]
    results = [{"type": "tool_result", "tool_use_id": "tooluse_a", "content": "sunny"},
               {"type": "tool_result", "tool_use_id": "tooluse_b", "content": "no data", "is_error": True}]
    final = client.messages.create(**{**ask, "messages": ask["messages"] + [
        {"role": "assistant", "content": first.content}, {"role": "user", "content": results}]})
    assert final.content[0].text.startswith("Paris is sunny")
    context = upstream_state(fake_upstream)["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert [(r["toolUseId"], r["status"]) for r in context["toolResults"]] == [("tooluse_a", "success"),
                                                                               ("tooluse_b", "error")]


@pytest.mark.parametrize("streamed", [False, True])
def test_thinking(client, fake_upstream, streamed):
    """The legacy prompt prefix, for a model that takes no native reasoning (test_reasoning_sdk.py: native)."""
    fake_upstream.script({"texts": ["<thinking>\nSix times", " seven is 42.</thinking>\n\n", "42"]})
    ask = {"model": "claude-haiku-4-5", "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
           "messages": [{"role": "user", "content": "6*7?"}]}
    if streamed:
        with client.messages.stream(**ask) as stream:
            thought = "".join(e.thinking for e in stream if e.type == "thinking")
            message = stream.get_final_message()
        assert thought == "Six times seven is 42."
    else:
        message = client.messages.create(**ask)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Six times seven is 42." and message.content[1].text == "42"


def test_image(client, fake_upstream):
    fake_upstream.script({"texts": ["A green pixel."]})
    message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}])
    assert message.content[0].text == "A green pixel."
    sent = upstream_state(fake_upstream)["currentMessage"]["userInputMessage"]
    assert sent["images"] == [{"format": "png", "source": {"bytes": PNG}}]


def test_image_url_is_a_bad_request(client, fake_upstream):
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]}])
    assert "base64" in info.value.message
    assert fake_upstream.stats()["chat_requests"] == 0


def test_count_tokens(client, fake_upstream):
    small = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    large = client.messages.count_tokens(model=MODEL, system="Be terse.", tools=[INTROSPECT],
                                         messages=[{"role": "user", "content": "a fairly long question " * 50}])
    assert 0 < small.input_tokens < large.input_tokens
    assert fake_upstream.stats()["chat_requests"] == 0


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_wrong_key_is_an_authentication_error(gw, how):
    other = "auth_token" if how == "api_key" else "api_key"
    with anthropic.Anthropic(base_url=gw.url, max_retries=0, timeout=30, **{how: "wrong-key", other: None}) as client:
        with pytest.raises(anthropic.AuthenticationError) as info:
            client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"


def test_the_key_as_a_bearer_token_works(gw, fake_upstream):
    with anthropic.Anthropic(base_url=gw.url, auth_token=KEY, api_key=None, max_retries=0, timeout=30) as client:
        message = client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "Hello! I am the fake Kiro."


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])


def test_upstream_failure_mid_stream_reaches_the_sdk_as_an_error_event(client, fake_upstream):
    fake_upstream.script({"events": [{"event": "assistantResponseEvent", "payload": {"content": "Half an"}},
                                     {"exception": "InternalServerException", "message": "model crashed"}]})
    received = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model=MODEL, max_tokens=64,
                                     messages=[{"role": "user", "content": "hi"}]) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert received == ["Half an"]
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "api_error"
    assert "model crashed" in info.value.body["error"]["message"]


def test_client_leaving_mid_stream_closes_the_upstream_call(gw, fake_upstream):
    frames = 200
    fake_upstream.script({"texts": [f"w{i} " for i in range(frames)], "pace": 0.05})
    response = requests.post(f"{gw.url}/v1/messages", stream=True, timeout=30, headers={"x-api-key": KEY},
                             json={"model": MODEL, "max_tokens": 100000, "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]})
    for line in response.iter_lines(decode_unicode=True):
        if "text_delta" in line:
            break
    response.close()
    deadline = time.monotonic() + 30
    while fake_upstream.stats()["open_streams"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = fake_upstream.stats()
    assert stats["open_streams"] == 0
    assert stats["frames_sent"] < frames  # ki2api hung up instead of reading the rest


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_and_deep_schemas_under_gunicorn(gw, client, fake_upstream, stream):
    """A lone surrogate (JavaScript clients send one as the JSON escape; the Python SDK cannot encode it) reaches
    Kiro as U+FFFD instead of a 500; a schema nested 800 levels deep is a 400 naming it, before Kiro is called."""
    deep = {"type": "string"}
    for _ in range(400):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=64, stream=stream, messages=[{"role": "user", "content": "x"}],
                               tools=[{"name": "deep", "input_schema": deep}])
    assert "tools[0].input_schema: is nested more than 100 levels deep" in info.value.message
    assert fake_upstream.stats()["chat_requests"] == 0
    fake_upstream.script({"texts": ["fine"]})
    body = ('{"model": "%s", "max_tokens": 64, "stream": %s, "messages": [{"role": "user", '
            '"content": "half a pair: \\ud83d, a whole one: \\ud83d\\ude00"}]}' % (MODEL, str(stream).lower()))
    reply = requests.post(f"{gw.url}/v1/messages", data=body, timeout=30,
                          headers={"x-api-key": KEY, "Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    if stream:
        events = parse_sse(reply.text)
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    else:
        text = reply.json()["content"][0]["text"]
    assert text == "fine"
    assert upstream_state(fake_upstream)["currentMessage"]["userInputMessage"]["content"] == \
        "half a pair: \ufffd, a whole one: \U0001F600"
