"""Issue 21's features under gunicorn with gevent workers, driven by the official anthropic and openai SDKs:
web search blocks and cache figures parsed by the SDK's own types, streamed and whole, and cut-off tool calls."""
from __future__ import annotations

import json

import anthropic
import openai
import pytest

from ki2api.translate.cut_calls import MARK
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-5"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
RESULTS = [{"title": "Kiro docs", "url": "https://kiro.dev/docs", "snippet": "Kiro is an agentic IDE.",
            "publishedDate": 1767225600000}]


@pytest.fixture
def sdk(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=30) as client:
        yield client


def test_the_sdk_reads_a_streamed_web_search(sdk, fake_upstream):
    fake_upstream.script_search({"results": RESULTS})
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL], messages=[
            {"role": "user", "content": "Perform a web search for the query: what is kiro"}]) as stream:
        message = stream.get_final_message()
    use, result, text = message.content
    assert isinstance(use, anthropic.types.ServerToolUseBlock) and use.input == {"query": "what is kiro"}
    assert isinstance(result, anthropic.types.WebSearchToolResultBlock) and result.tool_use_id == use.id
    assert [(r.title, r.url, r.page_age) for r in result.content] == [("Kiro docs", "https://kiro.dev/docs",
                                                                        "January 1, 2026")]
    assert "Kiro is an agentic IDE." in text.text
    assert message.usage.server_tool_use.web_search_requests == 1
    assert fake_upstream.stats()["chat_requests"] == 0


def test_the_sdk_gets_a_clear_error_when_kiro_refuses_the_search(sdk, fake_upstream):
    fake_upstream.script_search({"status": 403, "json": {"message": "Web search is not available for this user"}})
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.create(model=MODEL, max_tokens=1024, tools=[SEARCH_TOOL],
                            messages=[{"role": "user", "content": "Perform a web search for the query: x"}])
    assert "not available for this user" in caught.value.message
    fake_upstream.script({"texts": ["Chat still works."]})  # a search refusal rests no account
    chat = sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert chat.content[0].text == "Chat still works."


def test_a_cut_call_never_reaches_either_sdk(gateway, sdk, fake_upstream):
    cut = [{"event": "assistantResponseEvent", "payload": {"content": "Writing."}},
           {"event": "toolUseEvent", "payload": {"name": "Write", "toolUseId": "tooluse_cut"}},
           {"event": "toolUseEvent", "payload": {"name": "Write", "toolUseId": "tooluse_cut",
                                                  "input": '{"file_path": "a.py", "content": "x = '}}]
    fake_upstream.script({"events": cut}, {"events": cut})
    tools = [{"name": "Write", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                                                 "content": {"type": "string"}}}}]
    with sdk.messages.stream(model=MODEL, max_tokens=1024, tools=tools,
                             messages=[{"role": "user", "content": "write a.py"}]) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert [b.type for b in message.content] == ["text"] and MARK in message.content[0].text
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=30) as client:
        completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "write"}],
                                                    tools=[{"type": "function", "function": {
                                                        "name": "Write", "parameters": tools[0]["input_schema"]}}])
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and not choice.message.tool_calls
    assert MARK in choice.message.content and json.dumps("`Write`")[1:-1] in choice.message.content
