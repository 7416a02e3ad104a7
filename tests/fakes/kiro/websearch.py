"""The fake Kiro's web search: `POST /mcp`, a JSON-RPC `tools/call` of `web_search`, scripted answers.

What it checks, as the real service would refuse it: a valid bearer token (else 403 as chat), the JSON-RPC
shape (`jsonrpc` "2.0", `method` "tools/call", a string `id`, `params.name` "web_search", a non-empty string
`params.arguments.query`; else 400 "Improperly formed request.") and the account's profile ARN in
`x-amzn-kiro-profile-arn` (else 403: an account without one cannot search).

A search spec (POST /_control/websearch {"responses": [spec, ...]}, each answering one search in order; with
none queued, DEFAULT_RESULTS): every key optional:
- results: [{"title", "url", "snippet", "publishedDate"}] (the answer's results);
- status + json: a plain HTTP error answer instead (e.g. 429 throttled, 403 refused);
- rpc_error: {"code", "message"}: a JSON-RPC error answer (HTTP 200);
- is_error: text: a tool result with isError true;
- delay: seconds before answering (a search past the client's deadline).
"""
from __future__ import annotations

import json
from typing import Any

SPEC_KEYS = frozenset({"results", "status", "json", "rpc_error", "is_error", "delay"})
ARN_HEADER = "x-amzn-kiro-profile-arn"
DEFAULT_RESULTS = [
    {"title": "Fake Kiro search result", "url": "https://example.com/fake-result",
     "snippet": "A result the fake Kiro found.", "publishedDate": 1767225600000},
]
MALFORMED = {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "message": "Improperly formed request."}
NO_PROFILE = {"__type": "com.amazon.kiro.runtimeservice#AccessDeniedException",
              "message": "The request needs a profile ARN (x-amzn-kiro-profile-arn) to use web search."}


class SearchSpecError(ValueError):
    """A search spec the fake cannot follow."""


def check(spec: Any) -> dict[str, Any]:
    """The spec, or SearchSpecError naming what is wrong."""
    if not isinstance(spec, dict) or set(spec) - SPEC_KEYS:
        raise SearchSpecError(f"a search spec is an object with keys among {sorted(SPEC_KEYS)}: {spec!r}")
    if "results" in spec and not isinstance(spec["results"], list):
        raise SearchSpecError("results must be a list")
    return spec


def malformed(body: Any) -> str | None:
    """Why a /mcp body is not a well-formed web search call, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    params = body.get("params")
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if body.get("jsonrpc") != "2.0" or body.get("method") != "tools/call" or not isinstance(body.get("id"), str):
        return "not a JSON-RPC 2.0 tools/call with a string id"
    if not isinstance(params, dict) or params.get("name") != "web_search":
        return "params.name is not web_search"
    if not isinstance(arguments, dict) or not isinstance(arguments.get("query"), str) or not arguments["query"]:
        return "params.arguments.query is not a non-empty string"
    return None


def answer(spec: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
    """(HTTP status, JSON body) the spec answers the well-formed call `body` with."""
    if "status" in spec:
        return spec["status"], spec.get("json", {"message": "scripted"})
    call_id = body["id"]
    if "rpc_error" in spec:
        return 200, {"id": call_id, "jsonrpc": "2.0", "error": spec["rpc_error"]}
    if "is_error" in spec:
        return 200, {"id": call_id, "jsonrpc": "2.0",
                     "result": {"content": [{"type": "text", "text": spec["is_error"]}], "isError": True}}
    results = spec.get("results", DEFAULT_RESULTS)
    query = body["params"]["arguments"]["query"]
    text = json.dumps({"results": results, "totalResults": len(results), "query": query})
    return 200, {"id": call_id, "jsonrpc": "2.0", "result": {"content": [{"type": "text", "text": text}],
                                                             "isError": False}}
