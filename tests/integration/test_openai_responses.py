"""The Responses API through gunicorn + gevent workers, driven by the official openai SDK; every response and
streamed event checked against OpenAI's published schemas."""
from __future__ import annotations

import base64
import json
import os
import signal

import openai
import pytest

from tests.helpers.credentials import KEY
from tests.helpers.openai_schema import validate
from tests.helpers.waiting import wait_for
from tests.integration.test_observability import metrics_dir, per_worker

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-5"
ROUTE = "/v1/responses"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def sdk(gw) -> openai.OpenAI:
    """A client with its own connection pool: a new connection, which any worker may accept."""
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)


def tool_events(tool_id, name, pieces):
    events = [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}}]
    events += [{"event": "toolUseEvent", "payload": {"input": p, "name": name, "toolUseId": tool_id}} for p in pieces]
    return events + [{"event": "toolUseEvent", "payload": {"name": name, "stop": True, "toolUseId": tool_id}}]


def kiro_state(fake_upstream):
    return fake_upstream.requests()[-1]["body"]["conversationState"]


def test_create_plain(gateway, fake_upstream):
    fake_upstream.script({"texts": ["Hello", " from", " Kiro."]})
    response = sdk(gateway).responses.create(model=MODEL, input="Say hello", instructions="Be brief")
    validate(response.model_dump(exclude_unset=True), "Response")
    assert response.status == "completed"
    assert response.output_text == "Hello from Kiro."
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_stream_helper_accumulates_the_final_text(gateway, fake_upstream):
    fake_upstream.script({"texts": ["One", " two", " three."]})
    deltas = []
    with sdk(gateway).responses.stream(model=MODEL, input="Count") as stream:
        for event in stream:
            validate(event.model_dump(exclude_unset=True, warnings=False), "ResponseStreamEvent")
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas == ["One", " two", " three."]
    assert final.output_text == "One two three."
    assert final.status == "completed"


def test_stream_deltas_arrive_while_kiro_still_holds_the_rest(gateway, fake_upstream):
    fake_upstream.script({"texts": [f"piece{i} " for i in range(6)], "hold_after": 2})
    received = []
    with sdk(gateway).responses.stream(model=MODEL, input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                received.append(event.delta)
                if len(received) == 1:  # the fake sent its first frames only and waits: nothing was collected
                    assert fake_upstream.stats()["open_streams"] == 1
                    fake_upstream.release()
    assert received == [f"piece{i} " for i in range(6)]


def test_function_tool_call_output_answer(gateway, fake_upstream):
    client = sdk(gateway)
    fake_upstream.script({"events": tool_events("tooluse_w1", "get_weather", ['{"city": ', '"Paris"}'])},
                         {"texts": ["Sunny in Paris."]})
    history = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False)
    validate(first.model_dump(exclude_unset=True), "Response")
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    history += [item.model_dump(exclude_unset=True) for item in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"})
    second = client.responses.create(model=MODEL, input=history, tools=[WEATHER], store=False)
    assert second.output_text == "Sunny in Paris."
    state = kiro_state(fake_upstream)
    assert state["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"][0] == {
        "toolUseId": "tooluse_w1", "content": [{"text": "sunny, 24C"}], "status": "success"}


def test_image_input(gateway, fake_upstream):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    response = sdk(gateway).responses.create(model=MODEL, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": url}]}])
    assert response.status == "completed"
    images = kiro_state(fake_upstream)["currentMessage"]["userInputMessage"]["images"]
    assert images == [{"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}]


def served_by(gw, tmp_path, total: int) -> dict[int, float]:
    """{worker pid: /v1/responses requests answered}, once `total` were counted."""
    path = metrics_dir(tmp_path / "state")
    return wait_for(lambda: (lambda v: v if sum(v.values()) == total else None)(
        per_worker(path, "counter", "ki2api_requests_total", route=ROUTE)), f"{total} requests counted")


def test_previous_response_id_continues_on_another_worker(start_gateway, fake_upstream, tmp_path):
    gw = start_gateway(workers=2)
    fake_upstream.script({"texts": ["My name is Kiro."]}, {"texts": ["You asked my name."]})
    first = sdk(gw).responses.create(model=MODEL, input="What is your name?")
    [storer] = served_by(gw, tmp_path, 1)
    os.kill(storer, signal.SIGSTOP)  # only the other worker can accept the next connection
    try:
        second = sdk(gw).responses.create(model=MODEL, input="What did I ask?", previous_response_id=first.id)
    finally:
        os.kill(storer, signal.SIGCONT)
    counts = served_by(gw, tmp_path, 2)
    assert len(counts) == 2 and all(v == 1 for v in counts.values()), counts
    assert second.output_text == "You asked my name." and second.previous_response_id == first.id
    history = kiro_state(fake_upstream)["history"]
    assert [m.get("userInputMessage", m.get("assistantResponseMessage"))["content"] for m in history] == [
        "What is your name?", "My name is Kiro."]
    listed = sdk(gw).responses.input_items.list(second.id)
    validate(listed.model_dump(exclude_unset=True), "ResponseItemList")
    assert listed.data[0].content[0].text == "What did I ask?"
    assert sdk(gw).responses.retrieve(first.id).output_text == "My name is Kiro."
    sdk(gw).responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk(gw).responses.retrieve(first.id)


def test_previous_response_id_across_replicas_through_redis(start_gateway, fake_upstream, redis_server, tmp_path):
    one = start_gateway(REDIS_URL=redis_server.url, KI2API_STATE_DIR=str(tmp_path / "one"))
    two = start_gateway(REDIS_URL=redis_server.url, KI2API_STATE_DIR=str(tmp_path / "two"))
    fake_upstream.script({"texts": ["Stored on one."]}, {"texts": ["Continued on two."]})
    first = sdk(one).responses.create(model=MODEL, input="Remember this")
    second = sdk(two).responses.create(model=MODEL, input="And now?", previous_response_id=first.id)
    assert second.output_text == "Continued on two."
    assert kiro_state(fake_upstream)["history"][0]["userInputMessage"]["content"] == "Remember this"
    assert not (tmp_path / "one" / "responses").exists()  # kept in Redis, not in the replica's files
