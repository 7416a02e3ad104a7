"""Web search: Claude Code's search requests answered by Kiro's search (the fake's POST /mcp), pure and routed."""
import dataclasses
import json
import time

import pytest
from anthropic.types import ServerToolUseBlock, WebSearchToolResultBlock

from ki2api.app import create_app
from ki2api.errors import UpstreamError
from ki2api.translate import anthropic_request, websearch
from ki2api.translate.history import build_payload
from ki2api.upstream.websearch import parse_answer, rpc_body
from tests.helpers.anthropic_schema import parse_sse, validate_error, validate_event, validate_message
from tests.fakes.kiro.websearch import malformed
from tests.helpers.claude_code import BODY as CLAUDE_CODE_BODY, MESSAGES as CLAUDE_CODE_MESSAGES
from tests.helpers.openai_schema import validate

MODEL = "claude-sonnet-4-5"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}
SEARCH = {"model": MODEL, "max_tokens": 1024, "tools": [SEARCH_TOOL],
          "system": "You are an assistant for performing a web search tool use",
          "messages": [{"role": "user", "content": "Perform a web search for the query: kiro gateway 2026"}]}
RESULTS = [{"title": "Kiro docs", "url": "https://kiro.dev/docs", "snippet": "Kiro is an agentic IDE.",
            "publishedDate": 1767225600000},
           {"title": "No snippet", "url": "https://example.org/x"}]


def test_only_claude_codes_search_request_is_answered_by_the_search_alone():
    assert websearch.search_query(SEARCH) == "kiro gateway 2026"
    blocks = {**SEARCH, "messages": [{"role": "user", "content": [{"type": "text", "text": "plain words"}]}]}
    assert websearch.search_query(blocks) is None  # any other question: the model answers, searching as it likes
    with_other = {**SEARCH, "tools": [SEARCH_TOOL, {"name": "Read", "input_schema": {"type": "object"}}]}
    assert websearch.search_query(with_other) is None
    assert websearch.search_query({**SEARCH, "tools": []}) is None
    assert websearch.search_query({k: v for k, v in SEARCH.items() if k != "tools"}) is None


def test_the_rpc_call_is_what_the_fake_and_the_protocol_notes_accept():
    body = rpc_body("q")
    assert malformed(body) is None
    assert body["id"].startswith("web_search_tooluse_")
    assert body["params"] == {"name": "web_search", "arguments": {"query": "q"}}


def test_an_error_answer_is_an_upstream_error_never_empty_results():
    with pytest.raises(UpstreamError, match="refused the web search: nope"):
        parse_answer({"jsonrpc": "2.0", "id": "1", "error": {"code": -32000, "message": "nope"}})
    with pytest.raises(UpstreamError, match="failed: quota"):
        parse_answer({"result": {"content": [{"type": "text", "text": "quota"}], "isError": True}})
    with pytest.raises(UpstreamError):
        parse_answer("<html>")


def test_blocks_pass_the_sdk_types_and_come_back_as_history_text():
    results = parse_answer({"result": {"content": [{"type": "text", "text": json.dumps(
        {"results": RESULTS})}], "isError": False}})
    blocks = websearch.content_blocks("kiro", "srvtoolu_1", results)
    ServerToolUseBlock.model_validate(blocks[0])
    WebSearchToolResultBlock.model_validate(blocks[1])
    assert blocks[1]["content"][0]["page_age"] == "January 1, 2026"
    assert "Kiro is an agentic IDE." in blocks[2]["text"] and "Source: https://example.org/x" in blocks[2]["text"]
    body = {"model": MODEL, "max_tokens": 10, "messages": [
        {"role": "user", "content": "search kiro"}, {"role": "assistant", "content": blocks},
        {"role": "user", "content": "thanks"}]}
    payload = build_payload(anthropic_request.parse_conversation(body), "claude-sonnet-4.5")
    said = payload["conversationState"]["history"][-1]["assistantResponseMessage"]["content"]
    assert "[searched the web for: kiro]" in said and "Kiro docs (https://kiro.dev/docs)" in said


def test_a_search_request_is_answered_by_kiros_search(client, auth, fake_upstream):
    fake_upstream.script_search({"results": RESULTS})
    response = client.post("/v1/messages", json=SEARCH, headers=auth)
    assert response.status_code == 200
    message = validate_message(response.get_json())
    assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.content[0].input == {"query": "kiro gateway 2026"}
    assert message.content[1].tool_use_id == message.content[0].id
    assert [r.url for r in message.content[1].content] == ["https://kiro.dev/docs", "https://example.org/x"]
    assert message.usage.server_tool_use.web_search_requests == 1
    assert fake_upstream.stats()["chat_requests"] == 0  # no chat call: the search answers it
    (call,) = fake_upstream.searches()
    assert call["status"] == 200 and call["body"]["params"]["arguments"] == {"query": "kiro gateway 2026"}
    assert call["headers"]["x-amzn-kiro-profile-arn"].startswith("arn:aws:codewhisperer:")


def test_a_streamed_search_gives_the_same_blocks(client, auth, fake_upstream):
    fake_upstream.script_search({"results": RESULTS[:1]})
    response = client.post("/v1/messages", json={**SEARCH, "stream": True}, headers=auth)
    assert response.status_code == 200
    events = parse_sse(response.get_data(as_text=True))
    for name, data in events:
        validate_event(name, data)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["server_tool_use", "web_search_tool_result", "text"]
    assert starts[1]["content"][0]["title"] == "Kiro docs"
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert "https://kiro.dev/docs" in text
    assert events[-2][1]["usage"]["server_tool_use"]["web_search_requests"] == 1


@pytest.mark.parametrize("spec, status, words", [
    ({"rpc_error": {"code": -32603, "message": "search is not enabled"}}, 502, "search is not enabled"),
    ({"is_error": "quota exceeded"}, 502, "quota exceeded"),
    ({"status": 400, "json": {"message": "bad query"}}, 502, "bad query"),
])
def test_a_refused_search_is_a_clear_error(client, auth, fake_upstream, spec, status, words):
    fake_upstream.script_search(spec)
    response = client.post("/v1/messages", json=SEARCH, headers=auth)
    assert response.status_code == status
    body = response.get_json()
    validate_error(body)
    assert words in body["error"]["message"] and "web search" in body["error"]["message"]


def test_a_search_past_its_deadline_ends_in_504_at_the_deadline(settings, auth, fake_upstream):
    client = create_app(dataclasses.replace(settings, web_search_timeout=1.0)).test_client()
    fake_upstream.script_search({"delay": 5})
    started = time.monotonic()
    response = client.post("/v1/messages", json=SEARCH, headers=auth)
    assert response.status_code == 504
    assert time.monotonic() - started < 3
    assert "web search took longer than 1 s" in response.get_json()["error"]["message"]


METADATA = {"event": "metadataEvent", "payload": {"tokenUsage": {
    "uncachedInputTokens": 1200, "outputTokens": 9, "totalTokens": 6209, "cacheReadInputTokens": 4000,
    "cacheWriteInputTokens": 1000}}}


def test_cache_figures_kiro_reports_reach_both_apis(client, auth, fake_upstream):
    """Kept here with the other Claude Code features: Kiro's metadataEvent tokenUsage, as the peers read it."""
    text = {"event": "assistantResponseEvent", "payload": {"content": "cached"}}
    fake_upstream.script({"events": [text, METADATA]}, {"events": [text, METADATA]})
    body = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    usage = validate_message(client.post("/v1/messages", json=body, headers=auth).get_json()).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1200, 4000,
                                                                                                      1000)
    chat = client.post("/v1/chat/completions", json={"model": MODEL, "messages": body["messages"]},
                       headers=auth).get_json()["usage"]
    assert chat["prompt_tokens"] == 6200 and chat["prompt_tokens_details"]["cached_tokens"] == 4000


def test_openai_web_search_options_ground_the_answer_and_cite_by_url(client, auth, fake_upstream):
    fake_upstream.script_search({"results": RESULTS}, {"results": RESULTS})
    answer = ["Kiro is an agentic IDE (", "https://kiro.dev/docs", ")."]
    fake_upstream.script({"texts": answer}, {"texts": answer})
    body = {"model": MODEL, "web_search_options": {"search_context_size": "low"},
            "messages": [{"role": "user", "content": "What is Kiro?"}]}
    whole = client.post("/v1/chat/completions", json=body, headers=auth).get_json()
    validate(whole, "CreateChatCompletionResponse")
    message = whole["choices"][0]["message"]
    assert message["annotations"] == [{"type": "url_citation", "url_citation": {
        "start_index": 24, "end_index": 45, "url": "https://kiro.dev/docs", "title": "Kiro docs"}}]
    assert message["content"][24:45] == "https://kiro.dev/docs"
    (first,) = fake_upstream.requests()[:1]
    sent = first["body"]["conversationState"]["currentMessage"]["userInputMessage"]["content"]
    assert sent.startswith("What is Kiro?") and "Kiro is an agentic IDE." in sent and "https://example.org/x" in sent
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth)
    chunks = [json.loads(line[6:]) for line in streamed.get_data(as_text=True).splitlines()
              if line.startswith("data: {")]
    notes = [c["choices"][0]["delta"]["annotations"] for c in chunks if "annotations" in c["choices"][0]["delta"]]
    assert notes == [message["annotations"]]
    assert [s["body"]["params"]["arguments"]["query"] for s in fake_upstream.searches()] == ["What is Kiro?"] * 2


def test_openai_search_refused_is_a_clear_error_before_any_chat(client, auth, fake_upstream):
    fake_upstream.script_search({"rpc_error": {"code": -32000, "message": "not allowed"}})
    body = {"model": MODEL, "web_search_options": {}, "messages": [{"role": "user", "content": "news?"}]}
    response = client.post("/v1/chat/completions", json=body, headers=auth)
    assert response.status_code == 502 and "not allowed" in response.get_json()["error"]["message"]
    assert fake_upstream.stats()["chat_requests"] == 0


def test_count_tokens_agrees_with_the_usage_of_the_request_that_follows(client, auth, fake_upstream):
    """The fake reports context usage as Kiro does, its hidden system prompt included (context_usage "auto", at the
    captures' 3.1 characters a token); on Claude Code's request shape count_tokens and message_start run higher
    than that figure, by at most a quarter (docs/api.md): the safe side for compaction."""
    body = {**CLAUDE_CODE_BODY, "messages": CLAUDE_CODE_MESSAGES, "model": MODEL, "stream": False}
    counted = client.post("/v1/messages/count_tokens", headers=auth,
                          json={k: v for k, v in body.items() if k not in ("max_tokens", "stream")}).get_json()
    fake_upstream.script({"texts": ["ok"], "context_usage": "auto"}, {"texts": ["ok"], "context_usage": "auto"})
    usage = client.post("/v1/messages", headers=auth, json=body).get_json()["usage"]
    # Claude Code marks cache breakpoints: Anthropic's input_tokens leaves out what went to or came from the cache
    used = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    assert usage["cache_creation_input_tokens"] > 0
    events = parse_sse(client.post("/v1/messages", headers=auth, json={**body, "stream": True}).get_data(as_text=True))
    started = events[0][1]["message"]["usage"]["input_tokens"]
    assert abs(started - counted["input_tokens"]) <= 20  # the same estimate; the random ids differ in runs
    assert used <= counted["input_tokens"] <= 1.25 * used, (counted, used)
    assert used > 5000  # Kiro's own prompt is in it
