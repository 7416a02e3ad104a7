"""Kiro's own web search: one JSON-RPC `tools/call` of the tool `web_search` to `POST {api_base}/mcp`.

The request (protocol notes, "Web search"): `{"id", "jsonrpc": "2.0", "method": "tools/call", "params":
{"name": "web_search", "arguments": {"query"}}}` with the streaming client's headers and the account's
profile ARN in `x-amzn-kiro-profile-arn`. The answer: `{"result": {"content": [{"type": "text", "text":
"<JSON>"}], "isError": false}}`, that JSON being `{"results": [{"title", "url", "snippet", "publishedDate"
(ms), "id", "domain"}], "totalResults", "query"}`; or `{"error": {"code", "message"}}`.

A search has a deadline (WEB_SEARCH_TIMEOUT, connect and read together): it ends in results or an ApiError,
never a hang. An account Kiro refuses (throttled, no quota, a dead login) is rested like a refused chat and
the search goes to the next account.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

import requests

from ..accounts.pool import AccountPool, Lease
from ..errors import ApiError, AuthenticationError, PermissionDenied, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ..settings import Settings
from ..translate.websearch import TOOL, SearchResult
from .headers import mcp_headers
from .refusals import RETRY_UNAVAILABLE, map_status, refusal_kind, retry_after
from .session import UpstreamSession

log = logging.getLogger(__name__)
# What a refused search says about the account as a whole (rested as after a refused chat); any other refusal
# (a 403 "forbidden": no search for this account) leaves the account to chat.
RESTING = frozenset({"throttled", "quota", "capacity", "suspended", "rejected"})


def rpc_body(query: str) -> dict[str, Any]:
    """The JSON-RPC call, its id shaped as the IDE's (`web_search_tooluse_<22>_<ms>_<8>`)."""
    call_id = f"web_search_tooluse_{secrets.token_hex(11)}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"
    return {"id": call_id, "jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"query": query}}}


def parse_answer(body: Any) -> list[SearchResult]:
    """The results of an MCP answer; UpstreamError when Kiro answered with an error or something else."""
    if not isinstance(body, dict):
        raise UpstreamError("Kiro's web search answered with something that is not JSON-RPC")
    error = body.get("error")
    if isinstance(error, dict):
        raise UpstreamError(f"Kiro refused the web search: {error.get('message') or 'no message'} "
                            f"(code {error.get('code')})")
    result = body.get("result")
    content = result.get("content") if isinstance(result, dict) else None
    text = next((c.get("text") for c in content or [] if isinstance(c, dict) and c.get("type") == "text"), None)
    if not isinstance(text, str) or (isinstance(result, dict) and result.get("isError") is True):
        raise UpstreamError(f"Kiro's web search failed: {text or 'no results given'}")
    try:
        found = json.loads(text)
    except ValueError:
        raise UpstreamError("Kiro's web search answered with results that are not JSON") from None
    results = found.get("results") if isinstance(found, dict) else None
    return [_result(r) for r in results or [] if isinstance(r, dict) and isinstance(r.get("url"), str)]


def _result(raw: dict[str, Any]) -> SearchResult:
    published = raw.get("publishedDate")
    return SearchResult(str(raw.get("title") or raw["url"]), raw["url"], str(raw.get("snippet") or ""),
                        int(published) if isinstance(published, (int, float)) else None)


class WebSearch:
    """Runs searches through the account pool (any account: a search names no model).

    `rest` false (the search loop, upstream/search_loop.py): a refused search rests no account, as the answer
    goes on with a chat call on one; if the account is spent for chat too, that call finds out and fails over.
    """

    def __init__(self, settings: Settings, pool: AccountPool, session: UpstreamSession, rest: bool = True) -> None:
        self.settings, self.pool, self.session, self.rest = settings, pool, session, rest
        self.url = f"{settings.api_base}/mcp"

    def search(self, query: str) -> list[SearchResult]:
        """The results for `query` within the deadline; an ApiError when no account could search."""
        deadline = time.monotonic() + self.settings.web_search_timeout
        tried: set[str] = set()
        last: ApiError | None = None
        while True:
            lease = self.pool.acquire(tried, last)
            tried.add(lease.account.name)
            try:
                return self._search(lease, query, deadline)
            except _Refused as refused:
                last = refused.error
            finally:
                lease.release()

    def _search(self, lease: Lease, query: str, deadline: float) -> list[SearchResult]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise UpstreamTimeout(f"Kiro's web search took longer than {self.settings.web_search_timeout:g} s")
        tokens = lease.account.tokens
        try:
            credential = tokens.current()
        except AuthenticationError as exc:
            lease.disable(exc)
            raise _Refused(exc) from None
        arn = self.settings.profile_arn or credential.profile_arn
        headers = mcp_headers(credential, self.settings.client_version, tokens.machine_id(), arn)
        data = json.dumps(rpc_body(query), ensure_ascii=False).encode()
        try:
            response = self.session.post_stream(self.url, data, headers, (min(self.settings.connect_timeout, left),
                                                                           left))
            body = response.content  # read here, within the read deadline
        except requests.exceptions.Timeout:
            raise UpstreamTimeout(f"Kiro's web search took longer than {self.settings.web_search_timeout:g} s"
                                  ) from None
        except requests.exceptions.RequestException:
            raise UpstreamUnavailable("Could not reach Kiro's web search", retry_after=RETRY_UNAVAILABLE) from None
        if response.status_code != 200:
            error, kind = map_status(response), refusal_kind(response)
            if kind is None:
                raise UpstreamError(f"Kiro refused the web search (HTTP {response.status_code}): {error.message}")
            if kind in RESTING:
                if self.rest:
                    lease.refused(kind, error, retry_after(response))
                raise _Refused(error)
            # a 403 "forbidden": this account may not search, yet still chats; the next one is asked, none rested
            raise _Refused(PermissionDenied(f"Kiro refused the web search: {error.message}"))
        lease.served()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        results = parse_answer(answer)
        log.info("web search on %s: %d results", lease.account.name, len(results))
        return results


class _Refused(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error
