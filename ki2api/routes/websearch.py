"""Web search requests: Anthropic's server tool (and OpenAI's `web_search_options`) answered by Kiro's search.

Not a blueprint: routes/anthropic.py and routes/openai.py hand a search request here. The search runs before
the response starts, so a refusal or a missed deadline is an HTTP error of its own (502, 504...), never a hang
and never a half-sent stream. A request that offers the model the search tool among others takes the loop
instead (`offer_search`, `search_loop`; upstream/search_loop.py), where a failed search is an error block.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from flask import Response, current_app, jsonify

from ..observability.requestlog import note
from ..translate import websearch
from ..translate.answer import Answer
from ..translate.anthropic_response import message_id
from ..translate.history import Conversation
from ..translate.openai_response import ChunkStream
from ..translate.search_loop import SearchOptions, loop_options, tool_spec
from ..upstream.client import UpstreamStream
from ..upstream.search_loop import SearchLoop
from ..upstream.websearch import WebSearch
from ..web.sse import PROXY_HEADERS, format_event


def search(query: str) -> list[websearch.SearchResult]:
    """Kiro's results for `query` (an ApiError when no account could search in time)."""
    services = current_app.extensions["ki2api"]
    client = services.client
    return WebSearch(services.settings, client.pool, client.session).search(query)


def anthropic_answer(body: dict[str, Any], model: str, stream: bool, query: str) -> Response:
    """The Anthropic answer to a search request: server_tool_use, web_search_tool_result and a summary."""
    note(model=model, stream=stream)
    results = search(query)
    blocks = websearch.content_blocks(query, websearch.server_tool_id(), results)
    use = websearch.usage(body, blocks)
    note(tokens_in=use["input_tokens"], tokens_out=use["output_tokens"])
    if not stream:
        return jsonify(websearch.message(model, message_id(), blocks, use))
    events = websearch.stream_events(model, message_id(), blocks, use)
    return Response("".join(format_event(data, name) for name, data in events), mimetype="text/event-stream",
                    headers=PROXY_HEADERS)


def offer_search(body: dict[str, Any], conversation: Conversation,
                 find: Callable[[dict[str, Any], set[str]], SearchOptions | None] = loop_options
                 ) -> SearchOptions | None:
    """The search options when the request offers the model web search (`find` reads them: Anthropic's server
    tool, or the Responses API's hosted tool); its tool then joins the conversation's."""
    taken = {t["toolSpecification"]["name"].lower() for t in conversation.tools}
    taken |= {use["name"].lower() for turn in conversation.turns for use in turn.tool_uses}
    options = find(body, taken)
    if options is not None:
        conversation.tools = conversation.tools + [tool_spec(options)]
    return options


def search_loop(first: UpstreamStream, payload: dict[str, Any], options: SearchOptions, conversation: str | None,
                answer: Answer) -> SearchLoop:
    """The loop over the answer's calls and searches, starting from its first call; the searches are counted in
    the answer's usage from 0."""
    services = current_app.extensions["ki2api"]
    client = services.client
    searcher = WebSearch(services.settings, client.pool, client.session, rest=False)
    answer.usage.web_searches = 0
    return SearchLoop(first, payload, options, lambda following: client.send(following, conversation),
                      searcher.search)


class CitingChunkStream(ChunkStream):
    """A chunk stream whose answer cites web search results: a delta with the `url_citation` annotations goes
    out just before the finish chunk."""

    def __init__(self, model: str, include_usage: bool, results: list[websearch.SearchResult]) -> None:
        super().__init__(model, include_usage)
        self.results = results

    def chunks(self, answer: Answer, events: Iterable[object]) -> Iterator[dict[str, Any]]:
        """The usual chunks, with the annotations before the finish."""
        said: list[str] = []
        for chunk in super().chunks(answer, events):
            choice = chunk["choices"][0] if chunk["choices"] else None
            if choice is not None and choice["finish_reason"] is not None:
                citations = websearch.url_citations("".join(said), self.results)
                if citations:
                    yield self.chunk({"annotations": citations})
            elif choice is not None and isinstance(choice["delta"].get("content"), str):
                said.append(choice["delta"]["content"])
            yield chunk


def cite(completion: dict[str, Any], results: list[websearch.SearchResult]) -> dict[str, Any]:
    """A whole chat completion with its `url_citation` annotations."""
    message = completion["choices"][0]["message"]
    message["annotations"] = websearch.url_citations(message.get("content") or "", results)
    return completion
