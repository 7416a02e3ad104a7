"""The model-driven web search loop, its pure parts: options, the tool Kiro is offered, checks, events, payloads.

A request that offers Anthropic's web search server tool (`web_search_*`) beside other tools, or alone but
not in the shape of Claude Code's search sub-request (translate/websearch.py answers those directly), goes
to the model with a plain tool of ki2api's own (`tool_spec`). When the model calls it, ki2api runs the search
against Kiro (upstream/search_loop.py), tells the client with a `server_tool_use` and a
`web_search_tool_result` block, and calls the model again with the conversation extended by the call and
its results (`continued`), all in one client message. Pure: no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidRequest
from .tools import loads_finite
from .websearch import TOOL, SearchResult, is_server_search, result_block, summary

DEFAULT_MAX_USES = 5
# OpenAI's hosted web search tool types (the Responses API; Codex offers `web_search`).
OPENAI_SEARCH_TYPES = frozenset({"web_search", "web_search_2025_08_26", "web_search_preview",
                                 "web_search_preview_2025_03_11"})
MAX_QUERY = 1000  # characters; a longer query is answered `query_too_long`, as Anthropic does
DESCRIPTION = ("Search the web for current information: news, recent events, documentation, facts that may have "
               "changed since your training. Give one focused query; the answer lists each result's title, URL "
               "and an excerpt. Cite the URLs you use.")
# Anthropic's error codes for a web_search_tool_result_error (anthropic.types.WebSearchToolResultErrorCode).
INVALID_INPUT, UNAVAILABLE, MAX_USES, TOO_MANY, QUERY_TOO_LONG = (
    "invalid_tool_input", "unavailable", "max_uses_exceeded", "too_many_requests", "query_too_long")
_ERROR_NOTES = {
    INVALID_INPUT: "the search call needs a non-empty string `query`",
    UNAVAILABLE: "the web search is unavailable right now",
    MAX_USES: "the web search may be used no more in this answer; answer with what you have",
    TOO_MANY: "too many searches right now; answer without searching",
    QUERY_TOO_LONG: f"the query is longer than {MAX_QUERY} characters; use a shorter one",
}


@dataclass(frozen=True)
class SearchOptions:
    """The request's search tool: the name Kiro knows it by, and its options."""

    name: str
    max_uses: int = DEFAULT_MAX_USES
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    location: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchCall:
    """The model asked for a search: Kiro's call id, the id the client sees (`srvtoolu_...`), the query."""

    kiro_id: str
    tool_id: str
    query: Any


@dataclass(frozen=True, slots=True)
class SearchDone:
    """The search's outcome: its results, or an Anthropic error code."""

    call: SearchCall
    results: tuple[SearchResult, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CallEnd:
    """One upstream call of the loop ended and the next starts, its prompt estimated at `prompt_estimate`."""

    prompt_estimate: int


def _domains(tool: dict[str, Any], key: str) -> tuple[str, ...]:
    value = tool.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(d, str) and d.strip() for d in value):
        raise InvalidRequest(f"tools: the web search tool's {key} must be a list of domain names", param=key)
    return tuple(d.strip().lower().removeprefix("https://").removeprefix("http://").strip("/") for d in value)


def _location(tool: dict[str, Any]) -> dict[str, str]:
    value = tool.get("user_location")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("tools: the web search tool's user_location must be an object", param="user_location")
    return {k: v for k, v in value.items() if k in ("city", "region", "country", "timezone") and isinstance(v, str)
            and v}


def loop_options(body: dict[str, Any], taken: set[str]) -> SearchOptions | None:
    """The search tool's options when the request offers web search to the model, else None; `taken` holds the
    (lower-cased) tool names Kiro already knows in this request, which ki2api's own tool must not reuse."""
    tools = body.get("tools")
    found = [t for t in tools if is_server_search(t)] if isinstance(tools, list) else []
    choice = body.get("tool_choice")
    if not found or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    return _options(found[0], taken)


def responses_options(body: dict[str, Any], taken: set[str]) -> SearchOptions | None:
    """The same for a Responses request offering OpenAI's hosted `web_search` tool (its `filters.allowed_domains`
    and `user_location`; `search_context_size` is ignored; at most DEFAULT_MAX_USES searches)."""
    tools = body.get("tools")
    found = [t for t in tools if isinstance(t, dict) and t.get("type") in OPENAI_SEARCH_TYPES] \
        if isinstance(tools, list) else []
    if not found or body.get("tool_choice") == "none":
        return None
    filters = found[0].get("filters")
    allowed = filters.get("allowed_domains") if isinstance(filters, dict) else None
    return _options({"allowed_domains": allowed or None, "user_location": found[0].get("user_location")}, taken)


def _options(tool: dict[str, Any], taken: set[str]) -> SearchOptions:
    max_uses = tool.get("max_uses", DEFAULT_MAX_USES)
    if max_uses is None:
        max_uses = DEFAULT_MAX_USES
    if not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1:
        raise InvalidRequest("tools: the web search tool's max_uses must be a positive integer", param="max_uses")
    allowed, blocked = _domains(tool, "allowed_domains"), _domains(tool, "blocked_domains")
    if allowed and blocked:
        raise InvalidRequest("tools: the web search tool takes allowed_domains or blocked_domains, not both",
                             param="allowed_domains")
    return SearchOptions(internal_name(taken), max_uses, allowed, blocked, _location(tool))


def internal_name(taken: set[str]) -> str:
    """`web_search`, or `web_search_2`, `_3`... when a client tool already has that name (Kiro compares names
    regardless of case)."""
    name, n = TOOL, 1
    while name.lower() in taken:
        n += 1
        name = f"{TOOL}_{n}"
    return name


def tool_spec(options: SearchOptions) -> dict[str, Any]:
    """The plain tool Kiro offers the model for searching."""
    description = DESCRIPTION
    if options.location:
        place = ", ".join(options.location[k] for k in ("city", "region", "country") if k in options.location)
        zone = options.location.get("timezone")
        description += (f" The user is near {place}." if place else "") + (f" Their time zone: {zone}." if zone
                                                                          else "")
    return {"toolSpecification": {"name": options.name, "description": description, "inputSchema": {"json": {
        "type": "object", "properties": {"query": {"type": "string", "description": "The search query"}},
        "required": ["query"]}}}}


def parse_query(raw: str) -> Any:
    """The call's `query` from its assembled input JSON (None when there is none)."""
    try:
        value = loads_finite(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        return None
    return value.get("query") if isinstance(value, dict) else None


def query_error(query: Any) -> str | None:
    """The error code a query is refused with before any search, or None."""
    if not isinstance(query, str) or not query.strip():
        return INVALID_INPUT
    return QUERY_TOO_LONG if len(query) > MAX_QUERY else None


def _host_in(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def filtered(results: list[SearchResult], options: SearchOptions) -> tuple[SearchResult, ...]:
    """The results the domain options let through: a domain names itself and its subdomains."""
    kept = []
    for result in results:
        host = (urlsplit(result.url).hostname or "").lower()
        if options.allowed_domains and not _host_in(host, options.allowed_domains):
            continue
        if _host_in(host, options.blocked_domains):
            continue
        kept.append(result)
    return tuple(kept)


def use_block(call: SearchCall) -> dict[str, Any]:
    """The `server_tool_use` block the client sees."""
    return {"type": "server_tool_use", "id": call.tool_id, "name": TOOL, "input": {"query": call.query}}


def done_block(done: SearchDone) -> dict[str, Any]:
    """The `web_search_tool_result` block: the results, or Anthropic's error object."""
    if done.error is not None:
        return {"type": "web_search_tool_result", "tool_use_id": done.call.tool_id,
                "content": {"type": "web_search_tool_result_error", "error_code": done.error}}
    return result_block(done.call.tool_id, done.results)


def kiro_tool_use(call: SearchCall, name: str) -> dict[str, Any]:
    """The search call as the assistant turn's toolUse in the next upstream request."""
    query = call.query if isinstance(call.query, str) else ""
    return {"toolUseId": call.kiro_id, "name": name, "input": {"query": query}}


def kiro_tool_result(done: SearchDone) -> dict[str, Any]:
    """The search's outcome as the next request's toolResult: the results as text, or what went wrong."""
    if done.error is not None:
        return {"toolUseId": done.call.kiro_id, "status": "error",
                "content": [{"text": f"Web search error ({done.error}): {_ERROR_NOTES.get(done.error, done.error)}."}]}
    return {"toolUseId": done.call.kiro_id, "status": "success",
            "content": [{"text": summary(str(done.call.query), done.results)}]}


def reasoning_content(text: str, signature: str | None, redacted: str | None) -> dict[str, Any] | None:
    """The answer's signed (or redacted) native reasoning as its history turn carries it back; None for none or
    unsigned reasoning (Kiro checks signatures, as translate/history.py says)."""
    if signature:
        return {"reasoningText": {"text": text, "signature": signature}}
    return {"redactedContent": redacted} if redacted else None


def continued(payload: dict[str, Any], said: str, uses: list[dict[str, Any]], results: list[dict[str, Any]],
              reasoning: dict[str, Any] | None = None) -> dict[str, Any]:
    """The next upstream request: the current user message moves to history, followed by the assistant's
    turn (what it said, its native reasoning if signed, its search calls), and the search results are the new
    current message."""
    state = payload["conversationState"]
    current = dict(state["currentMessage"]["userInputMessage"])
    context = dict(current.pop("userInputMessageContext", {}))
    tools = context.pop("tools", [])
    if context:  # its tool results, if any, stay with it; the tools belong to the current message only
        current["userInputMessageContext"] = context
    assistant: dict[str, Any] = {"assistantResponseMessage": {"content": said or " ", "toolUses": uses}}
    if reasoning is not None:
        assistant["assistantResponseMessage"]["reasoningContent"] = reasoning
    following = {"content": "", "modelId": current["modelId"], "origin": current.get("origin", "AI_EDITOR"),
                 "userInputMessageContext": {"tools": tools, "toolResults": results}}
    history = state["history"] + [{"userInputMessage": current}, assistant]
    return {**payload, "conversationState": {**state, "history": history,
                                             "currentMessage": {"userInputMessage": following}}}

