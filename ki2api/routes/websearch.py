"""Web search requests: Anthropic's server tool (and OpenAI's `web_search_options`) answered by Kiro's search.

Not a blueprint: routes/anthropic.py and routes/openai.py hand a search request here. The search runs before
the response starts, so a refusal or a missed deadline is an HTTP error of its own (502, 504...), never a hang
and never a half-sent stream.
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify

from ..observability.requestlog import note
from ..translate import websearch
from ..translate.anthropic_response import message_id
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
