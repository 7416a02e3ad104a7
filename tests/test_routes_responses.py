"""The Responses blueprint through Flask's test client, against the fake Kiro over real HTTP; every response and
streamed event checked against OpenAI's published Responses schemas."""
import base64
import json

import pytest

from tests.helpers.openai_schema import validate

MODEL = "claude-sonnet-4-5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
           "strict": True}


def sse(response):
    """(event name, data) of each SSE event; the name must equal the data's type."""
    out = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        out.append(data)
    return out


def tool_events(tool_id, name, pieces):
    events = [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}}]
    events += [{"event": "toolUseEvent", "payload": {"input": p, "name": name, "toolUseId": tool_id}} for p in pieces]
    return events + [{"event": "toolUseEvent", "payload": {"name": name, "stop": True, "toolUseId": tool_id}}]


def sent(fake_upstream):
    return fake_upstream.requests()[-1]["body"]["conversationState"]


def post(client, auth, **body):
    return client.post("/v1/responses", json={"model": MODEL, **body}, headers=auth)


def test_plain_input_gives_a_completed_response_with_usage(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hel", "lo"], "context_usage": 2.0})
    response = post(client, auth, input="Say hello", instructions="Be brief", metadata={"k": "v"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    validate(body, "Response")
    assert body["status"] == "completed" and body["object"] == "response"
    assert body["incomplete_details"] is None and body["error"] is None
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert body["usage"]["input_tokens"] == 4000  # 2% of 200k, as the upstream reported
    assert body["usage"]["output_tokens"] > 0
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}
    assert body["instructions"] == "Be brief" and body["metadata"] == {"k": "v"}
    state = sent(fake_upstream)
    assert state["history"][0]["userInputMessage"]["content"] == "Be brief"
    assert state["currentMessage"]["userInputMessage"]["content"] == "Say hello"


def test_streamed_events_in_order_each_valid_with_sequence_numbers(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["One", " two", " three"]})
    response = post(client, auth, input="Count", stream=True)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = sse(response)
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added"] + ["response.output_text.delta"] * 3 + [
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["One", " two", " three"]
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "One two three"
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert client.get(f"/v1/responses/{final['id']}", headers=auth).get_json() == final


def test_function_call_round_trip_with_previous_response_id(client, auth, fake_upstream):
    fake_upstream.script({"events": tool_events("tooluse_1", "get_weather", ['{"city":', ' "Paris"}'])})
    first = post(client, auth, input="Weather in Paris?", tools=[WEATHER]).get_json()
    validate(first, "Response")
    [call] = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert call["call_id"] == "tooluse_1" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert first["tools"][0]["name"] == "get_weather"
    spec = sent(fake_upstream)["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0]
    assert spec["toolSpecification"]["name"] == "get_weather"

    fake_upstream.script({"texts": ["It is sunny."]})
    second = post(client, auth, previous_response_id=first["id"], tools=[WEATHER],
                  input=[{"type": "function_call_output", "call_id": "tooluse_1", "output": "sunny, 21C"}])
    assert second.status_code == 200, second.get_data(as_text=True)
    validate(second.get_json(), "Response")
    state = sent(fake_upstream)
    current = state["currentMessage"]["userInputMessage"]
    assert current["userInputMessageContext"]["toolResults"] == [
        {"toolUseId": "tooluse_1", "content": [{"text": "sunny, 21C"}], "status": "success"}]
    assert state["history"][0]["userInputMessage"]["content"] == "Weather in Paris?"
    assert state["history"][1]["assistantResponseMessage"]["toolUses"][0]["input"] == {"city": "Paris"}


def test_streamed_function_call_events(client, auth, fake_upstream):
    fake_upstream.script({"events": [{"event": "assistantResponseEvent", "payload": {"content": "Let me look."}}]
                          + tool_events("tooluse_2", "get_weather", ['{"city":"Oslo"}'])})
    events = sse(post(client, auth, input="Weather in Oslo?", tools=[WEATHER], stream=True))
    for event in events:
        validate(event, "ResponseStreamEvent")
    kinds = [e["type"] for e in events]
    assert kinds[kinds.index("response.output_item.done") + 1:] == [
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"][0]
    assert done["arguments"] == '{"city":"Oslo"}' and done["name"] == "get_weather"
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message", "function_call"]


def test_reasoning_streams_as_summary_and_comes_back(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["<thinking>Two plus two", " is four.</thinking>\n\n", "4"]})
    events = sse(post(client, auth, input="2+2?", reasoning={"effort": "low"}, stream=True))
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert "<thinking_mode>enabled</thinking_mode>" in json.dumps(sent(fake_upstream))
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    assert deltas == "Two plus two is four."
    final = events[-1]["response"]
    reasoning, message = final["output"]
    assert reasoning["type"] == "reasoning" and reasoning["summary"][0]["text"] == "Two plus two is four."
    assert reasoning["encrypted_content"].startswith("ki2api.r1.")
    assert message["content"][0]["text"] == "4"
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0

    fake_upstream.script({"texts": ["8"]})
    given_back = [{"type": "message", "role": "user", "content": "2+2?"}, reasoning,
                  {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]},
                  {"type": "message", "role": "user", "content": "times two?"}]
    assert post(client, auth, input=given_back, reasoning={"effort": "low"}).status_code == 200
    replayed = sent(fake_upstream)["history"][-1]["assistantResponseMessage"]["content"]
    assert replayed == "<thinking>Two plus two is four.</thinking>\n\n4"


def test_max_output_tokens_makes_an_incomplete_response(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["word " * 50]})
    body = post(client, auth, input="Talk", max_output_tokens=5).get_json()
    validate(body, "Response")
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_image_reaches_kiro_as_bytes(client, auth, fake_upstream):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    content = [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": url}]
    response = post(client, auth, input=[{"role": "user", "content": content}])
    assert response.status_code == 200, response.get_data(as_text=True)
    images = sent(fake_upstream)["currentMessage"]["userInputMessage"]["images"]
    assert images == [{"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}]


def test_json_schema_format_asks_for_json(client, auth, fake_upstream):
    fake_upstream.script({"texts": ['{"a": 1}']})
    fmt = {"type": "json_schema", "name": "thing", "schema": {"type": "object", "properties": {"a": {}}}}
    body = post(client, auth, input="Give a", text={"format": fmt}).get_json()
    validate(body, "Response")
    assert body["text"]["format"]["name"] == "thing"
    current = sent(fake_upstream)["currentMessage"]["userInputMessage"]["content"]
    assert current.startswith("Give a\n\n[Answer with one JSON value only") and '"properties"' in current


@pytest.mark.parametrize("body, param", [
    ({"input": 5}, "input"),
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].content[0].image_url"),
])
def test_bad_requests_are_400_naming_the_field(client, auth, fake_upstream, body, param):
    before = len(fake_upstream.requests())
    response = post(client, auth, **body)
    assert response.status_code == 400
    error = response.get_json()
    validate(error, "ErrorResponse")
    assert error["error"]["param"] == param
    assert len(fake_upstream.requests()) == before


def test_hosted_tools_a_client_always_sends_are_ignored_but_web_search_is_ki2apis_to_run(client, auth, fake_upstream):
    response = post(client, auth, input="hi", tools=[{"type": "web_search"}, {"type": "image_generation"}, WEATHER])
    assert response.status_code == 200
    tools = sent(fake_upstream)["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]
    assert [t["toolSpecification"]["name"] for t in tools] == ["get_weather", "web_search"]  # tests/test_search_loop


def test_stored_response_get_input_items_delete_then_404(client, auth, fake_upstream):
    body = post(client, auth, input=[{"role": "user", "content": "first"}, {"role": "user", "content": "second"}]
                ).get_json()
    got = client.get(f"/v1/responses/{body['id']}", headers=auth)
    assert got.status_code == 200 and got.get_json() == body
    items = client.get(f"/v1/responses/{body['id']}/input_items?order=asc", headers=auth).get_json()
    validate(items, "ResponseItemList")
    assert [i["content"][0]["text"] for i in items["data"]] == ["first", "second"]
    assert items["has_more"] is False
    deleted = client.delete(f"/v1/responses/{body['id']}", headers=auth)
    assert deleted.get_json() == {"id": body["id"], "object": "response.deleted", "deleted": True}
    for url in (f"/v1/responses/{body['id']}", f"/v1/responses/{body['id']}/input_items"):
        missing = client.get(url, headers=auth)
        assert missing.status_code == 404
        validate(missing.get_json(), "ErrorResponse")
    follow = post(client, auth, input="more", previous_response_id=body["id"])
    assert follow.status_code == 404 and follow.get_json()["error"]["param"] == "response_id"


def test_store_false_keeps_nothing(client, auth, fake_upstream):
    body = post(client, auth, input="hi", store=False).get_json()
    assert body["store"] is False
    assert client.get(f"/v1/responses/{body['id']}", headers=auth).status_code == 404


def test_input_tokens_counts_without_calling_kiro(client, auth, fake_upstream):
    before = len(fake_upstream.requests())
    response = client.post("/v1/responses/input_tokens", headers=auth,
                           json={"model": MODEL, "input": "Count these words please"})
    body = response.get_json()
    validate(body, "TokenCountsResource")
    assert body["input_tokens"] > 0
    assert len(fake_upstream.requests()) == before


def test_compact_summarises_into_an_item_the_next_request_takes(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["We fixed the bug in a.py."]})
    history = [{"role": "user", "content": "Fix a.py"}, {"role": "assistant", "content": "Done."}]
    body = client.post("/v1/responses/compact", headers=auth, json={"model": MODEL, "input": history}).get_json()
    validate(body, "CompactResource")
    [item] = body["output"]
    assert item["type"] == "compaction"
    assert "Summarise the conversation" in sent(fake_upstream)["currentMessage"]["userInputMessage"]["content"]
    post(client, auth, input=[item, {"role": "user", "content": "Now b.py"}])
    current = sent(fake_upstream)["currentMessage"]["userInputMessage"]["content"]
    assert current.startswith("Summary of the earlier conversation")
    assert current.endswith("We fixed the bug in a.py.\nNow b.py")


def test_failure_after_first_byte_ends_with_response_failed(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Partial", " answer", " more"], "fault": "reset_after", "fault_after": 2})
    events = sse(post(client, auth, input="hi", stream=True))
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert events[-1]["type"] == "response.failed"
    error = events[-1]["response"]["error"]
    assert error["code"] == "server_error" and error["message"]
    text = "".join(e.get("delta", "") for e in events)
    assert error["message"] not in text


def test_responses_need_the_key(client):
    response = client.post("/v1/responses", json={"model": MODEL, "input": "hi"})
    assert response.status_code == 401
    validate(response.get_json(), "ErrorResponse")


def test_status_page_and_metrics_show_the_route(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["a", "b"]})
    streamed = post(client, auth, input="hi", stream=True)
    streamed.get_data()
    streamed.close()
    whole = post(client, auth, input="hi")
    whole.close()
    data = client.get("/dashboard/data", headers=auth).get_json()
    assert data["totals"]["routes"]["/v1/responses"] == {"requests": 2, "errors": 0}
    latest, earlier = data["recent_requests"][:2]
    assert latest["request_id"] == whole.headers["X-Request-Id"]
    assert earlier["request_id"] == streamed.headers["X-Request-Id"]
    for entry, stream in ((latest, False), (earlier, True)):
        assert entry["route"] == "/v1/responses" and entry["model"] == "claude-sonnet-4-5"
        assert entry["stream"] is stream and entry["tokens_out"] > 0 and entry["account"]
    metrics = client.get("/metrics", headers=auth).get_data(as_text=True)
    assert 'ki2api_requests_total{model="claude-sonnet-4-5",route="/v1/responses",status="200",stream="true"}' \
        in metrics


def test_namespaced_functions_count_against_max_tools(app, client, auth, fake_upstream):
    limit = app.extensions["ki2api"].settings.max_tools
    group = {"type": "namespace", "name": "many", "tools": [
        {"type": "function", "name": f"f{i}", "parameters": {}} for i in range(limit + 1)]}
    response = post(client, auth, input="hi", tools=[group])
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "too_many_tools"


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_reach_kiro_and_the_echo_as_replacement_characters(client, auth, fake_upstream, stream):
    """JSON allows "\\ud800" alone, UTF-8 cannot carry it: it becomes U+FFFD everywhere, in what Kiro is sent and in
    what the response echoes and stores (instructions), instead of a failed stream."""
    fake_upstream.script({"texts": ["fine"]})
    data = ('{"model": "claude-sonnet-4-5", "stream": %s, "instructions": "s\\udfff",'
            ' "input": "a\\ud800b \\ud83d\\ude00"}' % str(stream).lower())
    response = client.post("/v1/responses", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = sse(response)[-1]["response"] if stream else response.get_json()
    assert body["status"] == "completed", body
    assert body["output"][0]["content"][0]["text"] == "fine"
    assert body["instructions"] == "s\ufffd"
    state = sent(fake_upstream)
    assert state["currentMessage"]["userInputMessage"]["content"] == "a\ufffdb \U0001F600"  # a real pair is kept
    assert state["history"][0]["userInputMessage"]["content"] == "s\ufffd"
    stored = client.get(f"/v1/responses/{body['id']}", headers=auth)
    assert stored.status_code == 200 and stored.get_json()["instructions"] == "s\ufffd"


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_name_with_a_lone_surrogate_comes_back_with_a_replacement_character(client, auth, fake_upstream,
                                                                                   stream):
    data = ('{"model": "claude-sonnet-4-5", "stream": %s, "input": "x", "tools": [{"type": "function",'
            ' "name": "get\\ud800it", "parameters": {"type": "object"}}]}' % str(stream).lower())
    client.post("/v1/responses", data=data, content_type="application/json", headers=auth)
    upstream = sent(fake_upstream)["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0][
        "toolSpecification"]["name"]
    fake_upstream.script({"events": tool_events("tooluse_1", upstream, ["{}"])})
    response = client.post("/v1/responses", data=data, content_type="application/json", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = sse(response)[-1]["response"] if stream else response.get_json()
    assert body["status"] == "completed", body
    [call] = [item for item in body["output"] if item["type"] == "function_call"]
    assert call["name"] == "get\ufffdit"
    assert body["tools"][0]["name"] == "get\ufffdit"
