"""The model-driven web search loop: its pure parts (translate/search_loop.py) and the loop through the routes,
against the fake Kiro (calls scripted in order, searches on its POST /mcp)."""
import json

import pytest
from anthropic.types import Message

from ki2api.errors import InvalidRequest
from ki2api.translate import search_loop as loop
from ki2api.translate.answer import Answer
from ki2api.translate.anthropic_response import collect_message
from ki2api.translate.websearch import SearchResult
from ki2api.upstream.events import ContextUsage, Metering, TextDelta
from tests.helpers.anthropic_schema import parse_sse, validate_event, validate_message
from tests.helpers.kiro_request import assert_well_formed
from tests.helpers.openai_schema import validate

MODEL = "claude-sonnet-4-5"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}
READ_TOOL = {"name": "Read", "description": "Read a file", "input_schema": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
RESULTS = [{"title": "Kiro docs", "url": "https://kiro.dev/docs", "snippet": "Kiro is an agentic IDE.",
            "publishedDate": 1767225600000},
           {"title": "Elsewhere", "url": "https://news.example.org/kiro", "snippet": "Kiro in the news."}]


def search_call(query: str, tool_id: str = "tooluse_s1", name: str = "web_search", text: str = "Let me look.") -> dict:
    """A scripted answer: some text, then a call of the search tool, split in two input pieces as Kiro sends."""
    raw = json.dumps({"query": query})
    return {"events": [{"event": "assistantResponseEvent", "payload": {"content": text}},
                       {"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "input": raw[:5]}},
                       {"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "input": raw[5:],
                                                             "stop": True}}],
            "context_usage": 2.0, "credits": 0.02}


def body(*tools: dict, content: str = "What is Kiro?", **extra) -> dict:
    return {"model": MODEL, "max_tokens": 1024, "tools": list(tools),
            "messages": [{"role": "user", "content": content}], **extra}  # extra may replace the model


# --- pure parts ---

def test_options_default_and_validated():
    options = loop.loop_options(body(SEARCH_TOOL), set())
    assert options == loop.SearchOptions("web_search", loop.DEFAULT_MAX_USES)
    assert loop.loop_options(body(READ_TOOL), set()) is None
    assert loop.loop_options(body(SEARCH_TOOL, tool_choice={"type": "none"}), set()) is None
    tool = {**SEARCH_TOOL, "max_uses": 2, "blocked_domains": ["https://Spam.example/"],
            "user_location": {"type": "approximate", "city": "Lyon", "country": "FR", "timezone": "Europe/Paris"}}
    options = loop.loop_options(body(tool), set())
    assert (options.max_uses, options.blocked_domains) == (2, ("spam.example",))
    assert "near Lyon, FR" in loop.tool_spec(options)["toolSpecification"]["description"]
    for bad in ({"max_uses": 0}, {"allowed_domains": "a.com"}, {"allowed_domains": ["a.com"], "blocked_domains": ["b"]},
                {"user_location": "Lyon"}):
        with pytest.raises(InvalidRequest):
            loop.loop_options(body({**SEARCH_TOOL, **bad}), set())


def test_the_internal_name_never_collides_with_a_client_tool():
    assert loop.internal_name(set()) == "web_search"
    assert loop.internal_name({"web_search"}) == "web_search_2"
    assert loop.internal_name({"web_search", "web_search_2"}) == "web_search_3"


def test_queries_are_checked_before_any_search():
    assert loop.parse_query('{"query": "kiro"}') == "kiro"
    assert loop.parse_query("{not json") is None
    assert loop.query_error("kiro") is None
    assert loop.query_error("") == loop.query_error(None) == loop.query_error(3) == loop.INVALID_INPUT
    assert loop.query_error("x" * (loop.MAX_QUERY + 1)) == loop.QUERY_TOO_LONG


def test_domains_filter_the_results_with_their_subdomains():
    results = [SearchResult("a", "https://kiro.dev/a"), SearchResult("b", "https://docs.kiro.dev/b"),
               SearchResult("c", "https://notkiro.dev/c")]
    allowed = loop.SearchOptions("web_search", allowed_domains=("kiro.dev",))
    assert [r.title for r in loop.filtered(results, allowed)] == ["a", "b"]
    blocked = loop.SearchOptions("web_search", blocked_domains=("kiro.dev",))
    assert [r.title for r in loop.filtered(results, blocked)] == ["c"]


def test_the_next_request_carries_the_call_and_its_results_and_is_well_formed():
    options = loop.SearchOptions("web_search")
    payload = {"conversationState": {
        "conversationId": "c", "agentContinuationId": "a", "agentTaskType": "vibe", "chatTriggerType": "MANUAL",
        "history": [], "currentMessage": {"userInputMessage": {
            "content": "What is Kiro?", "modelId": "m", "origin": "AI_EDITOR",
            "userInputMessageContext": {"tools": [loop.tool_spec(options)]}}}}}
    call = loop.SearchCall("tooluse_1", "srvtoolu_1", "kiro")
    ok = loop.SearchDone(call, (SearchResult("Kiro docs", "https://kiro.dev/docs", "An IDE."),))
    following = loop.continued(payload, "Let me look.", [loop.kiro_tool_use(call, "web_search")],
                               [loop.kiro_tool_result(ok)])
    assert_well_formed(following)
    state = following["conversationState"]
    assert state["history"][0]["userInputMessage"]["content"] == "What is Kiro?"
    assert "userInputMessageContext" not in state["history"][0]["userInputMessage"]
    assert state["history"][1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_1", "name": "web_search", "input": {"query": "kiro"}}]
    (result,) = state["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert result["status"] == "success" and "https://kiro.dev/docs" in result["content"][0]["text"]
    failed = loop.kiro_tool_result(loop.SearchDone(call, error=loop.UNAVAILABLE))
    assert failed["status"] == "error" and "unavailable" in failed["content"][0]["text"]


def test_the_answer_sums_the_calls_usage_and_counts_the_searches():
    answer = Answer(prompt_estimate=6000, context_window=200_000)
    answer.usage.web_searches = 0
    call = loop.SearchCall("tooluse_1", "srvtoolu_1", "kiro")
    events = [TextDelta("Let me look."), ContextUsage(5.0), Metering(0.02, "credit"), call,
              loop.SearchDone(call, (SearchResult("t", "https://kiro.dev"),)), loop.CallEnd(7000),
              TextDelta("Kiro is an IDE."), ContextUsage(6.0), Metering(0.03, "credit")]
    message = collect_message(answer, events, MODEL)
    assert [b["type"] for b in message["content"]] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    assert message["usage"]["input_tokens"] == 10_000 + 12_000  # 5 % and 6 % of the window, one per call
    assert message["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
    assert message["usage"]["kiro_credits"] == 0.05
    assert message["stop_reason"] == "end_turn"
    Message.model_validate(message)


# --- through the route, against the fake Kiro ---

def test_a_search_the_model_makes_is_run_and_answered_in_one_message(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro ide"), {"texts": ["Kiro is ", "an agentic IDE."]})
    fake_upstream.script_search({"results": RESULTS})
    message = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL, READ_TOOL)).get_json()
    validate_message(message)
    assert [b["type"] for b in message["content"]] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    use, result = message["content"][1:3]
    assert use["id"].startswith("srvtoolu_") and use["name"] == "web_search" and use["input"] == {"query": "kiro ide"}
    assert result["tool_use_id"] == use["id"]
    assert [r["url"] for r in result["content"]] == ["https://kiro.dev/docs", "https://news.example.org/kiro"]
    assert message["content"][3]["text"] == "Kiro is an agentic IDE."
    assert message["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert [s["body"]["params"]["arguments"]["query"] for s in fake_upstream.searches()] == ["kiro ide"]
    first, second = (r["body"]["conversationState"] for r in fake_upstream.requests())
    names = [t["toolSpecification"]["name"] for t in
             first["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]]
    assert names == ["Read", "web_search"]
    (sent,) = second["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert sent["toolUseId"] == "tooluse_s1" and "Kiro is an agentic IDE." in sent["content"][0]["text"]
    assert second["history"][-1]["assistantResponseMessage"]["content"] == "Let me look."


def test_streamed_the_blocks_follow_each_other_in_one_message(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro ide"), {"texts": ["Found it."]})
    fake_upstream.script_search({"results": RESULTS})
    response = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL, stream=True))
    events = parse_sse(response.get_data(as_text=True))
    for name, data in events:
        validate_event(name, data)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["text", "server_tool_use", "web_search_tool_result", "text"]
    indexes = [d["index"] for n, d in events if n == "content_block_start"]
    assert indexes == [0, 1, 2, 3]
    assert sum(n == "message_start" for n, _ in events) == 1
    deltas = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"query": "kiro ide"}'}]
    final = [d for n, d in events if n == "message_delta"][-1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["server_tool_use"]["web_search_requests"] == 1


def test_a_client_tool_beside_a_search_ends_the_message_for_the_client(client, auth, fake_upstream):
    both = search_call("kiro")
    both["events"] += [{"event": "toolUseEvent", "payload": {"name": "Read", "toolUseId": "tooluse_r1",
                                                             "input": '{"path": "a.txt"}', "stop": True}}]
    fake_upstream.script(both)
    message = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL, READ_TOOL)).get_json()
    assert [b["type"] for b in message["content"]] == ["text", "server_tool_use", "web_search_tool_result",
                                                      "tool_use"]
    assert message["content"][3]["input"] == {"path": "a.txt"} and message["stop_reason"] == "tool_use"
    assert fake_upstream.stats()["chat_requests"] == 1 and len(fake_upstream.searches()) == 1


def test_a_client_tool_named_web_search_keeps_its_name_and_the_search_tool_takes_another(client, auth,
                                                                                        fake_upstream):
    own = {**READ_TOOL, "name": "web_search"}
    fake_upstream.script(search_call("kiro", name="web_search_2"), {"texts": ["Done."]})
    message = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL, own)).get_json()
    assert [b["type"] for b in message["content"]] == ["text", "server_tool_use", "web_search_tool_result", "text"]
    first = fake_upstream.requests()[0]["body"]["conversationState"]["currentMessage"]["userInputMessage"]
    assert [t["toolSpecification"]["name"] for t in first["userInputMessageContext"]["tools"]] == [
        "web_search", "web_search_2"]


def test_a_refused_search_is_an_error_block_and_the_model_answers_anyway(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["I could not search."]})
    fake_upstream.script_search({"status": 403, "json": {"message": "Web search is not available for this user"}})
    message = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL)).get_json()
    validate_message(message)
    assert message["content"][2]["content"] == {"type": "web_search_tool_result_error", "error_code": "unavailable"}
    assert message["content"][3]["text"] == "I could not search." and message["stop_reason"] == "end_turn"
    assert message["usage"]["server_tool_use"]["web_search_requests"] == 0
    second = fake_upstream.requests()[1]["body"]["conversationState"]["currentMessage"]["userInputMessage"]
    assert second["userInputMessageContext"]["toolResults"][0]["status"] == "error"


def test_searches_past_max_uses_are_refused_and_the_loop_ends(client, auth, fake_upstream):
    fake_upstream.script(search_call("one", "tooluse_1"), search_call("two", "tooluse_2"),
                         search_call("three", "tooluse_3"), {"texts": ["never asked for"]})
    tool = {**SEARCH_TOOL, "max_uses": 1}
    message = client.post("/v1/messages", headers=auth, json=body(tool)).get_json()
    results = [b["content"] for b in message["content"] if b["type"] == "web_search_tool_result"]
    assert isinstance(results[0], list)
    assert results[1:] == [{"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}] * 2
    assert len(fake_upstream.searches()) == 1 and fake_upstream.stats()["chat_requests"] == 3
    assert message["usage"]["server_tool_use"]["web_search_requests"] == 1
    assert message["stop_reason"] == "end_turn"


def test_claude_codes_search_request_still_takes_the_direct_path(client, auth, fake_upstream):
    direct = body(SEARCH_TOOL, content="Perform a web search for the query: kiro")
    message = client.post("/v1/messages", headers=auth, json=direct).get_json()
    assert [b["type"] for b in message["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert fake_upstream.stats()["chat_requests"] == 0


# --- the Responses API (Codex offers {"type": "web_search"}) ---

def test_responses_options_read_openais_hosted_tool():
    tool = {"type": "web_search", "filters": {"allowed_domains": ["kiro.dev"]},
            "user_location": {"type": "approximate", "country": "FR"}}
    options = loop.responses_options({"tools": [tool]}, set())
    assert (options.name, options.allowed_domains, options.location) == ("web_search", ("kiro.dev",), {"country": "FR"})
    assert loop.responses_options({"tools": [tool], "tool_choice": "none"}, set()) is None
    assert loop.responses_options({"tools": [{"type": "function", "name": "f"}]}, set()) is None


def test_responses_a_search_is_a_web_search_call_item_and_the_text_cites_its_urls(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro ide", text=""), {"texts": ["See https://kiro.dev/docs for more."]})
    fake_upstream.script_search({"results": RESULTS})
    request = {"model": MODEL, "input": "What is Kiro?", "tools": [{"type": "web_search"}]}
    whole = client.post("/v1/responses", headers=auth, json=request).get_json()
    validate(whole, "Response")
    search, message = whole["output"]
    assert search["type"] == "web_search_call" and search["id"].startswith("ws_")
    assert search["status"] == "completed" and search["action"]["type"] == "search"
    assert search["action"]["query"] == "kiro ide"
    assert [s["url"] for s in search["action"]["sources"]] == ["https://kiro.dev/docs", "https://news.example.org/kiro"]
    (note,) = message["content"][0]["annotations"]
    assert note == {"type": "url_citation", "url": "https://kiro.dev/docs", "title": "Kiro docs",
                    "start_index": 4, "end_index": 25}
    fake_upstream.script(search_call("kiro news", "tooluse_s2", text=""), {"texts": ["News: https://kiro.dev/docs"]})
    fake_upstream.script_search({"results": RESULTS})
    streamed = client.post("/v1/responses", headers=auth, json={**request, "stream": True,
                                                                "input": [*whole["output"], {
                                                                    "role": "user", "content": "More?"}]})
    events = [json.loads(line[6:]) for line in streamed.get_data(as_text=True).splitlines()
              if line.startswith("data: ")]
    for event in events:
        validate(event, "ResponseStreamEvent")
    assert events[-1]["type"] == "response.completed"
    kinds = [e["type"] for e in events]
    at = kinds.index("response.web_search_call.searching")
    assert kinds[at - 2:at + 3] == ["response.output_item.added", "response.web_search_call.in_progress",
                                    "response.web_search_call.searching", "response.web_search_call.completed",
                                    "response.output_item.done"]
    assert kinds.count("response.output_text.annotation.added") == 1
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["web_search_call", "message"]
    past = fake_upstream.requests()[-1]["body"]["conversationState"]["history"]
    assert any("[searched the web for: kiro ide]" in h.get("assistantResponseMessage", {}).get("content", "")
               for h in past)


def test_a_throttled_search_rests_no_account_so_the_answer_goes_on(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["Answered without it."]})
    fake_upstream.script_search({"status": 429, "json": {"message": "Too many requests", "reason": "THROTTLING"}})
    response = client.post("/v1/messages", headers=auth, json=body(SEARCH_TOOL))
    assert response.status_code == 200
    message = response.get_json()
    assert message["content"][2]["content"] == {"type": "web_search_tool_result_error",
                                                "error_code": "too_many_requests"}
    assert message["content"][3]["text"] == "Answered without it."


def test_native_reasoning_goes_back_signed_with_the_search_call(client, auth, fake_upstream):
    """Kiro checks an assistant turn's reasoning signature; the loop's next call carries the first call's
    signed reasoning back as that turn's reasoningContent (the fake refuses a signature it did not issue)."""
    thinking = {**search_call("kiro"), "reasoning": ["I should ", "search."]}
    fake_upstream.script(thinking, {"texts": ["Kiro is an IDE."]})
    request = body(SEARCH_TOOL, model="claude-sonnet-4-6", thinking={"type": "adaptive"})
    message = client.post("/v1/messages", headers=auth, json=request).get_json()
    assert [b["type"] for b in message["content"]] == ["thinking", "text", "server_tool_use",
                                                      "web_search_tool_result", "text"]
    past = fake_upstream.requests()[1]["body"]["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert past["reasoningContent"]["reasoningText"]["text"] == "I should search."
    assert past["reasoningContent"]["reasoningText"]["signature"] == message["content"][0]["signature"]
    assert fake_upstream.requests()[1]["status"] == 200


def test_blocked_domains_leave_the_results_before_client_and_model_see_them(client, auth, fake_upstream):
    fake_upstream.script(search_call("kiro"), {"texts": ["Done."]})
    fake_upstream.script_search({"results": RESULTS})
    tool = {**SEARCH_TOOL, "blocked_domains": ["example.org"]}
    message = client.post("/v1/messages", headers=auth, json=body(tool)).get_json()
    assert [r["url"] for r in message["content"][2]["content"]] == ["https://kiro.dev/docs"]
    (sent,) = fake_upstream.requests()[1]["body"]["conversationState"]["currentMessage"]["userInputMessage"][
        "userInputMessageContext"]["toolResults"]
    assert "kiro.dev/docs" in sent["content"][0]["text"] and "example.org" not in sent["content"][0]["text"]


class _Stub:
    """An upstream answer that replays events (what SearchLoop reads)."""

    status = 200

    def __init__(self, events: list) -> None:
        self._events, self.closed, self.aborted = events, False, False

    def events(self, keepalive=None):
        yield from self._events

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def test_a_client_gone_during_a_search_gets_no_further_call():
    from ki2api.upstream.events import ToolUseDelta
    from ki2api.upstream.search_loop import SearchLoop

    first = _Stub([TextDelta("Looking."), ToolUseDelta("tooluse_1", "web_search", '{"query": "kiro"}', True)])
    sent = []

    def search(query):
        running.abort()  # the client hangs up while the search runs
        return [SearchResult("Kiro docs", "https://kiro.dev/docs")]

    running = SearchLoop(first, {}, loop.SearchOptions("web_search"), sent.append, search)
    kinds = [type(event).__name__ for event in running.events()]
    assert kinds == ["TextDelta", "SearchCall", "SearchDone"] and sent == []
    assert first.aborted and first.closed
