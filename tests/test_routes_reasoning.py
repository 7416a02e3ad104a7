"""Native reasoning through both blueprints (Flask's test client) against the fake Kiro, which issues signatures,
checks `additionalModelRequestFields` against the model's schema and refuses signatures it did not issue."""
import json

import requests

from tests.fakes.kiro.reasoning import redacted_data, sign
from tests.helpers.anthropic_schema import parse_sse, validate_event, validate_message
from tests.helpers.credentials import ACCESS

NATIVE = "claude-sonnet-4-6"  # its schema: thinking adaptive|disabled, effort low|medium|high|max, max_tokens
LEGACY = "claude-sonnet-4-5"  # no schema: the prompt prefix
THOUGHT = ["The user wants", " six times seven."]
ASK = [{"role": "user", "content": "6*7?"}]


def sent(fake):
    return fake.requests()[-1]["body"]


def test_anthropic_thinking_reaches_kiro_natively_and_comes_back_signed(client, auth, fake_upstream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]})
    response = client.post("/v1/messages", headers=auth, json={
        "model": NATIVE, "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 5000},
        "messages": ASK})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    validate_message(body)
    assert body["content"] == [{"type": "thinking", "thinking": "The user wants six times seven.",
                                "signature": sign("The user wants six times seven.")},
                               {"type": "text", "text": "42"}]
    upstream = sent(fake_upstream)
    assert upstream["additionalModelRequestFields"] == {
        "thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "medium"},
        "max_tokens": 8000}
    assert "<thinking_mode>" not in str(upstream["conversationState"])


def test_anthropic_signed_thinking_goes_back_as_reasoning_content(client, auth, fake_upstream):
    thought = "The user wants six times seven."
    fake_upstream.script({"texts": ["Anything else?"]})
    history = [{"role": "user", "content": "6*7?"},
               {"role": "assistant", "content": [
                   {"type": "thinking", "thinking": thought, "signature": sign(thought)},
                   {"type": "text", "text": "42"}]},
               {"role": "user", "content": "thanks"}]
    response = client.post("/v1/messages", headers=auth, json={
        "model": NATIVE, "max_tokens": 2048, "thinking": {"type": "adaptive"}, "messages": history})
    assert response.status_code == 200, response.get_data(as_text=True)
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant == {"content": "42", "reasoningContent": {
        "reasoningText": {"text": thought, "signature": sign(thought)}}}


def test_a_forged_signature_is_kiros_refusal_passed_on(client, auth, fake_upstream):
    history = [{"role": "user", "content": "6*7?"},
               {"role": "assistant", "content": [
                   {"type": "thinking", "thinking": "edited thought", "signature": sign("original thought")},
                   {"type": "text", "text": "42"}]},
               {"role": "user", "content": "thanks"}]
    response = client.post("/v1/messages", headers=auth,
                           json={"model": NATIVE, "max_tokens": 2048, "messages": history})
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request_error"
    assert "THINKING_SIGNATURE_INVALID" in response.get_json()["error"]["message"]


def test_streamed_thinking_ends_with_a_signature_delta(client, auth, fake_upstream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]})
    response = client.post("/v1/messages", headers=auth, json={
        "model": NATIVE, "max_tokens": 2048, "stream": True, "thinking": {"type": "adaptive"}, "messages": ASK})
    events = parse_sse(response.get_data(as_text=True))
    for name, data in events:
        validate_event(name, data)
    deltas = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert [d["type"] for d in deltas] == ["thinking_delta", "thinking_delta", "signature_delta"]
    assert deltas[-1]["signature"] == sign("".join(THOUGHT))
    stop = next(i for i, (n, d) in enumerate(events) if n == "content_block_stop")
    assert events[stop - 1][1]["delta"]["type"] == "signature_delta"


def test_legacy_streamed_thinking_also_ends_with_a_signature_delta(client, auth, fake_upstream):
    """A client that reads the signature only from the delta (the Vercel AI SDK) keeps the block (issue 18)."""
    fake_upstream.script({"texts": ["<thinking>\nhm</thinking>\n\n", "42"]})
    response = client.post("/v1/messages", headers=auth, json={
        "model": LEGACY, "max_tokens": 4096, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": ASK})
    events = parse_sse(response.get_data(as_text=True))
    deltas = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert deltas == [{"type": "thinking_delta", "thinking": "hm"}, {"type": "signature_delta", "signature": ""}]
    assert "additionalModelRequestFields" not in sent(fake_upstream)


def test_redacted_thinking_round_trip(client, auth, fake_upstream):
    fake_upstream.script({"redacted_reasoning": True, "reasoning": ["fine"], "texts": ["42"]})
    body = client.post("/v1/messages", headers=auth, json={
        "model": NATIVE, "max_tokens": 2048, "thinking": {"type": "adaptive"}, "messages": ASK}).get_json()
    validate_message(body)
    assert [b["type"] for b in body["content"]] == ["redacted_thinking", "thinking", "text"]
    data = body["content"][0]["data"]
    assert data == redacted_data("fine")
    fake_upstream.script({"texts": ["ok"]})
    history = [*ASK, {"role": "assistant", "content": [body["content"][0], {"type": "text", "text": "42"}]},
               {"role": "user", "content": "thanks"}]
    response = client.post("/v1/messages", headers=auth, json={"model": NATIVE, "max_tokens": 2048,
                                                               "messages": history})
    assert response.status_code == 200, response.get_data(as_text=True)
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["reasoningContent"] == {"redactedContent": data}


def test_anthropic_value_the_model_does_not_take_is_a_400_before_kiro(client, auth, fake_upstream):
    response = client.post("/v1/messages", headers=auth, json={
        "model": NATIVE, "max_tokens": 2048, "output_config": {"effort": "xhigh"}, "messages": ASK})
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert message.startswith("output_config.effort:") and "low, medium, high, max" in message
    assert fake_upstream.stats()["chat_requests"] == 0


def test_openai_reasoning_effort_and_signed_reasoning_details(client, auth, fake_upstream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": NATIVE, "reasoning_effort": "high", "messages": ASK})
    assert response.status_code == 200, response.get_data(as_text=True)
    message = response.get_json()["choices"][0]["message"]
    thought = "".join(THOUGHT)
    assert message["reasoning_content"] == thought and message["content"] == "42"
    assert message["reasoning_details"] == [{"type": "reasoning.text", "text": thought, "signature": sign(thought),
                                             "format": "anthropic-claude-v1", "index": 0}]
    assert sent(fake_upstream)["additionalModelRequestFields"] == {
        "thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "high"}}
    fake_upstream.script({"texts": ["ok"]})
    follow = [*ASK, {**message, "role": "assistant"}, {"role": "user", "content": "thanks"}]
    response = client.post("/v1/chat/completions", headers=auth, json={"model": NATIVE, "messages": follow})
    assert response.status_code == 200, response.get_data(as_text=True)
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["reasoningContent"] == {"reasoningText": {"text": thought, "signature": sign(thought)}}


def test_openai_streamed_signature_comes_in_reasoning_details(client, auth, fake_upstream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": f"{NATIVE}-thinking", "stream": True, "messages": ASK})
    chunks = [c for c in (line[6:] for line in response.get_data(as_text=True).splitlines()
                          if line.startswith("data: ")) if c != "[DONE]"]
    deltas = [json.loads(c)["choices"][0]["delta"] for c in chunks]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "".join(THOUGHT)
    details = [d["reasoning_details"] for d in deltas if "reasoning_details" in d]
    assert details == [[{"type": "reasoning.text", "text": "".join(THOUGHT), "signature": sign("".join(THOUGHT)),
                         "format": "anthropic-claude-v1", "index": 0}]]
    assert sent(fake_upstream)["additionalModelRequestFields"] == {
        "thinking": {"type": "adaptive", "display": "summarized"}}


def test_openai_unsigned_reasoning_is_not_replayed_to_a_native_model(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["ok"]})
    follow = [*ASK, {"role": "assistant", "content": "42", "reasoning_content": "my own thoughts"},
              {"role": "user", "content": "thanks"}]
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": NATIVE, "reasoning_effort": "low", "messages": follow})
    assert response.status_code == 200
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant == {"content": "42"}


def test_openai_effort_the_model_does_not_take_is_a_400_in_openais_envelope(client, auth, fake_upstream):
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": NATIVE, "reasoning_effort": "xhigh", "messages": ASK})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["param"], error["code"], error["type"]) == ("reasoning_effort", "unsupported_value",
                                                              "invalid_request_error")
    assert "low, medium, high, max" in error["message"]
    assert fake_upstream.stats()["chat_requests"] == 0


def test_the_fake_refuses_fields_a_model_does_not_take(fake_upstream):
    """The fake itself, as the service: fields for a model without a schema, or outside the schema, are a 400."""
    body = {"conversationState": {"conversationId": "c", "chatTriggerType": "MANUAL", "history": [],
                                  "currentMessage": {"userInputMessage": {
                                      "content": "hi", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}}},
            "additionalModelRequestFields": {"output_config": {"effort": "high"}}}
    url = f"{fake_upstream.url}/generateAssistantResponse"
    headers = {"Authorization": f"Bearer {ACCESS}"}
    refused = requests.post(url, json=body, headers=headers, timeout=5)
    assert refused.status_code == 400 and "Improperly formed" in refused.json()["message"]
    body["conversationState"]["currentMessage"]["userInputMessage"]["modelId"] = "claude-sonnet-4.6"
    body["additionalModelRequestFields"] = {"output_config": {"effort": "xhigh"}}
    assert requests.post(url, json=body, headers=headers, timeout=5).status_code == 400
    body["additionalModelRequestFields"] = {"output_config": {"effort": "max"}}
    fake_upstream.script({"texts": ["ok"]})
    assert requests.post(url, json=body, headers=headers, timeout=5).status_code == 200
    reasons = fake_upstream.stats()["malformed"]
    assert len(reasons) == 2 and "allows none" in reasons[0] and "xhigh" in reasons[1]
    fake_upstream.reset()  # these refusals were the point: the autouse check must not count them


def test_openai_redacted_reasoning_round_trip(client, auth, fake_upstream):
    fake_upstream.script({"redacted_reasoning": True, "texts": ["42"]}, {"texts": ["ok"]})
    message = client.post("/v1/chat/completions", headers=auth, json={
        "model": NATIVE, "reasoning_effort": "low", "messages": ASK}).get_json()["choices"][0]["message"]
    assert message["reasoning_details"] == [{"type": "reasoning.encrypted", "data": redacted_data(""),
                                             "format": "anthropic-claude-v1", "index": 0}]
    follow = [*ASK, {**message, "role": "assistant"}, {"role": "user", "content": "thanks"}]
    response = client.post("/v1/chat/completions", headers=auth, json={"model": NATIVE, "messages": follow})
    assert response.status_code == 200, response.get_data(as_text=True)
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["reasoningContent"] == {"redactedContent": redacted_data("")}


def test_a_tool_loop_keeps_the_signed_thinking_beside_the_tool_use(client, auth, fake_upstream):
    weather = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    call = [{"event": "toolUseEvent", "payload": {"name": "get_weather", "toolUseId": "tooluse_1"}},
            {"event": "toolUseEvent", "payload": {"name": "get_weather", "toolUseId": "tooluse_1",
                                                  "input": '{"city": "Paris"}'}},
            {"event": "toolUseEvent", "payload": {"name": "get_weather", "toolUseId": "tooluse_1", "stop": True}}]
    fake_upstream.script({"reasoning": ["Need the weather."], "events": call}, {"texts": ["Sunny."]})
    ask = {"model": NATIVE, "max_tokens": 2048, "thinking": {"type": "adaptive"}, "tools": [weather]}
    first = client.post("/v1/messages", headers=auth, json={**ask, "messages": ASK}).get_json()
    assert [b["type"] for b in first["content"]] == ["thinking", "tool_use"]
    follow = [*ASK, {"role": "assistant", "content": first["content"]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tooluse_1", "content": "sun"}]}]
    second = client.post("/v1/messages", headers=auth, json={**ask, "messages": follow})
    assert second.status_code == 200, second.get_data(as_text=True)
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["toolUses"][0]["toolUseId"] == "tooluse_1"
    assert assistant["reasoningContent"]["reasoningText"] == {"text": "Need the weather.",
                                                              "signature": sign("Need the weather.")}
