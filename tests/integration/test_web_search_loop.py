"""The model-driven web search loop under gunicorn with gevent workers, driven by the official anthropic SDK: the
model calls the search tool (the fake Kiro's scripted toolUseEvent), ki2api searches on the fake's POST /mcp and
calls the model again, and the SDK reads one message with its typed server tool blocks, streamed and whole; and
the same loop on the Responses API, read by the openai SDK."""
from __future__ import annotations

import json
import time

import anthropic
import openai
import pytest
import requests
from anthropic.types import ServerToolUseBlock, TextBlock, ToolUseBlock, WebSearchToolResultBlock
from openai.types.responses import ResponseFunctionWebSearch

from tests.helpers.credentials import KEY
from tests.helpers.openai_schema import validate

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-5"
SEARCH_TIMEOUT = 1.0  # WEB_SEARCH_TIMEOUT of this module's gateway
KEEPALIVE = 0.3  # its STREAM_KEEPALIVE: a whole answer slower than this starts with padding
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
READ_TOOL = {"name": "Read", "description": "Read a file", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
RESULTS = [{"title": "Kiro docs", "url": "https://kiro.dev/docs", "snippet": "Kiro is an agentic IDE.",
            "publishedDate": 1767225600000}]
QUESTION = [{"role": "user", "content": "What is Kiro? Search the web."}]
# The settings of the module's shared gateway (tests/integration/conftest.py).
GATEWAY_ENV = {"WEB_SEARCH_TIMEOUT": str(SEARCH_TIMEOUT), "STREAM_KEEPALIVE": str(KEEPALIVE)}


@pytest.fixture
def sdk(shared_gateway, fake_upstream):
    with anthropic.Anthropic(base_url=shared_gateway.url, api_key=KEY, max_retries=0, timeout=30) as client:
        yield client


def search_call(query: str, tool_id: str = "tooluse_s1", text: str = "Let me search.") -> dict:
    """A scripted Kiro answer that says `text`, then calls the search tool (its input in two pieces)."""
    raw = json.dumps({"query": query})
    return {"events": [{"event": "assistantResponseEvent", "payload": {"content": text}},
                       {"event": "toolUseEvent", "payload": {"name": "web_search", "toolUseId": tool_id,
                                                             "input": raw[:4]}},
                       {"event": "toolUseEvent", "payload": {"name": "web_search", "toolUseId": tool_id,
                                                             "input": raw[4:], "stop": True}}],
            "context_usage": 2.0, "credits": 0.02}


def second_request(fake_upstream) -> dict:
    """The user message of the chat request ki2api made after the search."""
    return fake_upstream.requests()[1]["body"]["conversationState"]["currentMessage"]["userInputMessage"]


def test_streamed_the_sdk_reads_text_search_results_and_the_answer_in_one_message(sdk, fake_upstream):
    fake_upstream.script(search_call("kiro ide"), {"texts": ["Kiro is ", "an agentic IDE."]})
    fake_upstream.script_search({"results": RESULTS})
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL, READ_TOOL],
                             messages=QUESTION) as stream:
        message = stream.get_final_message()
    lead, use, result, answer = message.content
    assert isinstance(lead, TextBlock) and lead.text == "Let me search."
    assert isinstance(use, ServerToolUseBlock) and use.name == "web_search" and use.input == {"query": "kiro ide"}
    assert use.id.startswith("srvtoolu_")
    assert isinstance(result, WebSearchToolResultBlock) and result.tool_use_id == use.id
    assert [(r.title, r.url, r.page_age) for r in result.content] == [
        ("Kiro docs", "https://kiro.dev/docs", "January 1, 2026")]
    assert isinstance(answer, TextBlock) and answer.text == "Kiro is an agentic IDE."
    assert message.stop_reason == "end_turn"
    assert message.usage.server_tool_use.web_search_requests == 1
    (sent,) = second_request(fake_upstream)["userInputMessageContext"]["toolResults"]
    assert sent["toolUseId"] == "tooluse_s1" and "Kiro is an agentic IDE." in sent["content"][0]["text"]
    assert "https://kiro.dev/docs" in sent["content"][0]["text"]


def test_the_first_calls_text_goes_out_before_the_search_has_answered(shared_gateway, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["Found it."]})
    delay = SEARCH_TIMEOUT / 2
    fake_upstream.script_search({"results": RESULTS, "delay": delay})
    body = {"model": MODEL, "max_tokens": 1024, "stream": True, "tools": [SEARCH_TOOL], "messages": QUESTION}
    arrived: dict[str, float] = {}
    with requests.post(f"{shared_gateway.url}/v1/messages", json=body, stream=True, timeout=30,
                       headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as response:
        for chunk in response.iter_content(chunk_size=None):
            for mark in ("Let me search.", "web_search_tool_result", "Found it."):
                if mark.encode() in chunk:
                    arrived.setdefault(mark, time.monotonic())
    assert set(arrived) == {"Let me search.", "web_search_tool_result", "Found it."}
    assert arrived["web_search_tool_result"] - arrived["Let me search."] >= delay - 0.1


def test_whole_the_usage_sums_both_calls_and_the_answer_goes_back_as_history(sdk, fake_upstream):
    fake_upstream.script(search_call("kiro ide"), {"texts": ["Kiro is an IDE."], "context_usage": 3.0,
                                                   "credits": 0.03})
    fake_upstream.script_search({"results": RESULTS})
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL], messages=QUESTION)
    message = raw.parse()
    assert [b.type for b in message.content] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    assert isinstance(message.content[2], WebSearchToolResultBlock)
    # 2 % and 3 % of the model's 200,000-token window: each call's input, summed
    assert message.usage.input_tokens == 4000 + 6000
    assert message.usage.server_tool_use.web_search_requests == 1
    assert raw.headers["X-Kiro-Credits"] == "0.05"
    fake_upstream.script({"texts": ["You are welcome."]})
    follow = sdk.messages.create(model=MODEL, max_tokens=64, tools=[SEARCH_TOOL], messages=QUESTION + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": "Thanks."}])
    assert follow.content[0].text == "You are welcome."
    past = fake_upstream.requests()[-1]["body"]["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert "kiro.dev/docs" in past["content"] and "Kiro is an IDE." in past["content"]


def test_a_whole_answer_is_padded_while_a_search_runs(shared_gateway, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["Found it."]})
    fake_upstream.script_search({"results": RESULTS, "delay": SEARCH_TIMEOUT * 0.8})
    body = {"model": MODEL, "max_tokens": 1024, "tools": [SEARCH_TOOL], "messages": QUESTION}
    pieces: list[tuple[float, bytes]] = []
    with requests.post(f"{shared_gateway.url}/v1/messages", json=body, stream=True, timeout=30,
                       headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as response:
        for chunk in response.iter_content(chunk_size=None):
            pieces.append((time.monotonic(), chunk))
    text = b"".join(chunk for _, chunk in pieces).decode()
    assert text.startswith("  ")  # a space at once, one more while the search ran (the calls themselves are fast)
    message = json.loads(text)
    assert [b["type"] for b in message["content"]] == ["text", "server_tool_use", "web_search_tool_result", "text"]


def test_a_refused_search_is_an_error_block_and_the_answer_ends_properly(sdk, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["I could not search; from memory: an IDE."]})
    fake_upstream.script_search({"status": 403, "json": {"message": "Web search is not available for this user"}})
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL], messages=QUESTION) as stream:
        message = stream.get_final_message()
    result = message.content[2]
    assert isinstance(result, WebSearchToolResultBlock)
    assert result.content.type == "web_search_tool_result_error" and result.content.error_code == "unavailable"
    assert message.content[3].text.startswith("I could not search") and message.stop_reason == "end_turn"
    assert message.usage.server_tool_use.web_search_requests == 0
    assert second_request(fake_upstream)["userInputMessageContext"]["toolResults"][0]["status"] == "error"


def test_a_search_past_its_deadline_is_an_error_block_in_bounded_time(sdk, fake_upstream):
    fake_upstream.script(search_call("slow"), {"texts": ["Answered without the search."]},
                         search_call("slow"), {"texts": ["Answered without the search."]})
    fake_upstream.script_search({"delay": SEARCH_TIMEOUT * 10}, {"delay": SEARCH_TIMEOUT * 10})
    started = time.monotonic()
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL], messages=QUESTION) as stream:
        streamed = stream.get_final_message()
    whole = sdk.messages.create(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL], messages=QUESTION)
    took = time.monotonic() - started
    for message in (streamed, whole):
        assert message.content[2].content.error_code == "unavailable"
        assert message.content[3].text == "Answered without the search." and message.stop_reason == "end_turn"
    assert took < 2 * SEARCH_TIMEOUT + 4  # two searches cut at their deadline, not the fake's ten-fold delay


def test_past_max_uses_the_model_is_told_and_answers(sdk, fake_upstream):
    fake_upstream.script(search_call("one", "tooluse_1"), search_call("two", "tooluse_2"),
                         {"texts": ["Here is what I found."]})
    fake_upstream.script_search({"results": RESULTS})
    message = sdk.messages.create(model=MODEL, max_tokens=1024, tools=[{**SEARCH_TOOL, "max_uses": 1}],
                                  messages=QUESTION)
    assert [b.type for b in message.content] == ["text", "server_tool_use", "web_search_tool_result", "text",
                                                "server_tool_use", "web_search_tool_result", "text"]
    assert message.content[5].content.error_code == "max_uses_exceeded"
    assert message.content[6].text == "Here is what I found." and message.stop_reason == "end_turn"
    assert message.usage.server_tool_use.web_search_requests == 1 and len(fake_upstream.searches()) == 1
    (told,) = fake_upstream.requests()[2]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["toolResults"]
    assert told["status"] == "error" and "max_uses_exceeded" in told["content"][0]["text"]


def test_a_client_tool_beside_a_search_goes_to_the_client_after_the_search(sdk, fake_upstream):
    both = search_call("kiro")
    both["events"].append({"event": "toolUseEvent", "payload": {"name": "Read", "toolUseId": "tooluse_r1",
                                                                "input": '{"path": "README.md"}', "stop": True}})
    fake_upstream.script(both)
    fake_upstream.script_search({"results": RESULTS})
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL, READ_TOOL],
                             messages=QUESTION) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["text", "server_tool_use", "web_search_tool_result", "tool_use"]
    call = message.content[3]
    assert isinstance(call, ToolUseBlock) and call.name == "Read" and call.input == {"path": "README.md"}
    assert message.stop_reason == "tool_use" and message.usage.server_tool_use.web_search_requests == 1
    assert fake_upstream.stats()["chat_requests"] == 1


def test_the_openai_sdk_reads_a_responses_web_search_streamed_and_whole(shared_gateway, fake_upstream):
    """Codex offers {"type": "web_search"}: the model's search is a web_search_call item, its cited URL an
    url_citation annotation; every response and event is checked against OpenAI's published schemas."""
    fake_upstream.script(search_call("kiro ide", text=""), {"texts": ["Kiro: see https://kiro.dev/docs"]},
                         search_call("kiro ide", text=""), {"texts": ["Kiro: see https://kiro.dev/docs"]})
    fake_upstream.script_search({"results": RESULTS}, {"results": RESULTS})
    with openai.OpenAI(base_url=f"{shared_gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30) as client:
        whole = client.responses.create(model=MODEL, input="What is Kiro?", tools=[{"type": "web_search"}])
        with client.responses.stream(model=MODEL, input="What is Kiro?", tools=[{"type": "web_search"}]) as stream:
            kinds = []
            for event in stream:
                validate(event.model_dump(exclude_unset=True, warnings=False), "ResponseStreamEvent")
                kinds.append(event.type)
            streamed = stream.get_final_response()
    for response in (whole, streamed):
        validate(response.model_dump(exclude_unset=True), "Response")
        search, message = response.output
        assert isinstance(search, ResponseFunctionWebSearch) and search.status == "completed"
        assert search.action.type == "search" and search.action.query == "kiro ide"
        assert response.output_text == "Kiro: see https://kiro.dev/docs"
        (note,) = message.content[0].annotations
        assert (note.type, note.url, note.title) == ("url_citation", "https://kiro.dev/docs", "Kiro docs")
        assert response.output_text[note.start_index:note.end_index] == note.url
    assert "response.web_search_call.searching" in kinds and "response.output_text.annotation.added" in kinds
    assert [s["body"]["params"]["arguments"]["query"] for s in fake_upstream.searches()] == ["kiro ide"] * 2
