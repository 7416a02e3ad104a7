"""Anthropic's web search server tool over Kiro's search: which requests are searches, and the answer's blocks.

Claude Code's WebSearch tool asks for a search with a request of its own: the only tool is Anthropic's server
tool (`{"type": "web_search_20250305", "name": "web_search"}` or a later `web_search_*` version) and the
user message reads "Perform a web search for the query: <query>". Kiro has no such tool in chat (passed on as
a plain tool it answers "Improperly formed request"), so ki2api runs the query against Kiro's own search
(upstream/websearch.py) and answers as Anthropic does: a `server_tool_use` block, a `web_search_tool_result`
block with the results, and a text block summing them up (titles, snippets, sources), with
`usage.server_tool_use.web_search_requests`. Any other request offering the server tool lets the model search
(translate/search_loop.py). Pure: no I/O.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from .usage import estimate_tokens

TOOL = "web_search"
PREFIX = "Perform a web search for the query: "
SNIPPET_CHARS = 300


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One result of Kiro's search (upstream/websearch.py parses them)."""

    title: str
    url: str
    snippet: str = ""
    published_ms: int | None = None


def server_tool_id() -> str:
    """An Anthropic-style server tool use id (`srvtoolu_` + 24 hex)."""
    return f"srvtoolu_{uuid.uuid4().hex[:24]}"


def is_server_search(tool: Any) -> bool:
    """Anthropic's web search server tool, in any of its versions."""
    return isinstance(tool, dict) and str(tool.get("type") or "").startswith("web_search_")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text"
                         and isinstance(b.get("text"), str))
    return ""


def search_query(body: dict[str, Any]) -> str | None:
    """The query when the request is Claude Code's search request (its only tools are web search server tools and
    its last user message reads "Perform a web search for the query: ..."), else None."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or not all(is_server_search(t) for t in tools):
        return None
    messages = body.get("messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) \
        else []
    text = _text_of(users[-1].get("content")).strip() if users else ""
    return text[len(PREFIX):].strip() or None if text.startswith(PREFIX) else None


def _page_age(published_ms: int | None) -> str | None:
    if published_ms is None:
        return None
    try:
        day = datetime.fromtimestamp(published_ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return f"{day:%B} {day.day}, {day.year}"


def summary(query: str, results: Iterable[SearchResult]) -> str:
    """The text block: each result's title, snippet and source, numbered."""
    lines = [f'Web search results for "{query}":', ""]
    found = list(results)
    for n, result in enumerate(found, 1):
        lines.append(f"{n}. {result.title}")
        if result.snippet:
            snippet = result.snippet if len(result.snippet) <= SNIPPET_CHARS else result.snippet[:SNIPPET_CHARS] + "..."
            lines.append(f"   {snippet}")
        lines.append(f"   Source: {result.url}")
        lines.append("")
    if not found:
        lines.append("No results found.")
    return "\n".join(lines).rstrip()


def result_block(tool_id: str, results: Iterable[SearchResult]) -> dict[str, Any]:
    """The `web_search_tool_result` block; `encrypted_content` carries the snippet (ki2api reads it back)."""
    return {"type": "web_search_tool_result", "tool_use_id": tool_id,
            "content": [{"type": "web_search_result", "url": r.url, "title": r.title,
                         "encrypted_content": r.snippet, "page_age": _page_age(r.published_ms)} for r in results]}


def content_blocks(query: str, tool_id: str, results: list[SearchResult]) -> list[dict[str, Any]]:
    """server_tool_use, web_search_tool_result, then the summary text."""
    return [{"type": "server_tool_use", "id": tool_id, "name": TOOL, "input": {"query": query}},
            result_block(tool_id, results),
            {"type": "text", "text": summary(query, results)}]


def usage(body: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Estimated tokens (no model ran) and the one search request."""
    asked = estimate_tokens(_text_of(body.get("system")) + "".join(
        _text_of(m.get("content")) for m in body.get("messages", []) if isinstance(m, dict)))
    said = estimate_tokens(blocks[-1]["text"])
    return {"input_tokens": asked, "output_tokens": said, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}


def message(model: str, message_id: str, blocks: list[dict[str, Any]], use: dict[str, Any]) -> dict[str, Any]:
    """The whole Anthropic message."""
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": "end_turn", "stop_sequence": None, "usage": use}


def stream_events(model: str, message_id: str, blocks: list[dict[str, Any]], use: dict[str, Any]
                  ) -> list[tuple[str, dict[str, Any]]]:
    """The same message as stream events: server blocks whole in content_block_start, the text as a delta."""
    start = {**message(model, message_id, [], {**use, "output_tokens": 0}), "stop_reason": None}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(blocks):
        opened = {**block, "text": ""} if block["type"] == "text" else block
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": opened}))
        if block["type"] == "text":
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": use}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def history_text(block: dict[str, Any]) -> str:
    """A server_tool_use or web_search_tool_result block sent back in an assistant turn, as text Kiro can take."""
    if block.get("type") == "server_tool_use":
        query = block.get("input", {}).get("query") if isinstance(block.get("input"), dict) else None
        return f"[searched the web for: {query}]" if isinstance(query, str) else ""
    content = block.get("content")
    if not isinstance(content, list):
        return "[web search failed]"
    found = [SearchResult(str(r.get("title") or r.get("url")), str(r.get("url")), str(r.get("encrypted_content") or ""))
             for r in content if isinstance(r, dict) and r.get("type") == "web_search_result"]
    return "\n".join(f"- {r.title} ({r.url}){': ' + r.snippet[:SNIPPET_CHARS] if r.snippet else ''}" for r in found)


def openai_query(body: dict[str, Any]) -> str | None:
    """The query of a chat completion with `web_search_options`: its last user message's text, else None."""
    if not isinstance(body.get("web_search_options"), dict):
        return None
    messages = body.get("messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(messages, list) \
        else []
    query = _text_of(users[-1].get("content")).strip() if users else ""
    return query[:1000] or None


def grounding(query: str, results: list[SearchResult]) -> str:
    """The results as a note for the model, appended to the current user message."""
    return (f"[Web search results for \"{query}\"; cite each source you use by its URL.]\n"
            + summary(query, results).split("\n", 2)[-1])


def url_citations(text: str, results: list[SearchResult]) -> list[dict[str, Any]]:
    """OpenAI's `url_citation` annotations: each result URL where the answer text first cites it."""
    found = []
    for result in results:
        at = text.find(result.url)
        if at >= 0:
            found.append({"type": "url_citation", "url_citation": {
                "start_index": at, "end_index": at + len(result.url), "url": result.url, "title": result.title}})
    return sorted(found, key=lambda a: a["url_citation"]["start_index"])
