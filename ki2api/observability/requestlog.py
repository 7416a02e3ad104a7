"""Request ids, the one summary log line per request, and the figures /metrics and the status page show.

Views add fields with `note(...)` (model, stream, upstream_status, tokens_in, tokens_out, credits,
upstream_error, stream_error); `account` comes from the upstream call itself (upstream_opened), `key` (the
client key's label, web/auth.key_label) from the key check, tokens of a non-streamed answer from its `usage`. The line is written when the response is closed, so a stream's line has its
time to first byte, its duration and whatever the generator noted before it ended. Only these plain fields
are logged: never a prompt, an answer, a key or a token.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from flask import Flask, Response, current_app, g, has_request_context, request

from .metrics import Metrics
from .recent import RecentLog
from .wrong_keys import WrongKeyLog

log = logging.getLogger("ki2api.request")

EXTENSION = "ki2api.requests"
RECENT = 50
_UPSTREAM_STATUSES = frozenset({401, 402, 403, 429, 502, 503, 504})
_ORDER = ("request_id", "method", "route", "path", "status", "model", "stream", "upstream_status", "upstream_error",
          "stream_error", "outcome", "ttfb_ms", "duration_ms", "tokens_in", "tokens_out", "credits", "account", "key", "client_ip")
_USAGE_BODY_LIMIT = 1 << 20
# The status page's own traffic, health checks and scrapes: counted, logged, but kept out of "recent requests"
# (a page left open, Docker's HEALTHCHECK and Prometheus would otherwise push every API request out of it).
QUIET_ROUTES = frozenset({"/", "/dashboard", "/dashboard/data", "/static/<path:filename>", "/health", "/metrics"})


@dataclass
class RequestBook:
    """This worker's metrics, and the most recent request summaries of every worker (for the status page)."""

    metrics: Metrics
    started: float = field(default_factory=time.time)
    recent: RecentLog = field(init=False)
    errors: RecentLog = field(init=False)
    wrong_keys: WrongKeyLog = field(default_factory=WrongKeyLog)

    def __post_init__(self) -> None:
        self.recent = RecentLog("requests", self.metrics.multiproc_dir, RECENT)
        self.errors = RecentLog("errors", self.metrics.multiproc_dir, RECENT)

    def record(self, summary: dict[str, Any]) -> None:
        """Keep a finished request's summary; errors are also kept apart so a busy hour cannot push them out."""
        now = time.time()
        entry = {"at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"), "t": now, **summary}
        if summary.get("route") not in QUIET_ROUTES:
            self.recent.add(entry)
        if summary.get("status", 0) >= 400 or summary.get("stream_error") or summary.get("outcome") == "error":
            self.errors.add(entry)
        self.metrics.observe(summary)


def book() -> RequestBook:
    """The current app's RequestBook."""
    return current_app.extensions[EXTENSION]


def _request_id() -> str:
    given = request.headers.get("X-Request-Id", "")
    if 0 < len(given) <= 64 and all(c.isalnum() or c in "-_." for c in given):
        return given
    return uuid.uuid4().hex


def note(**fields: object) -> None:
    """Attach fields (model, stream, upstream_status, tokens_in...) to this request's summary line."""
    g.ki2api_log.update(fields)


def _elapsed_ms() -> float:
    return round((time.perf_counter() - g.ki2api_start) * 1000, 1)


def first_byte() -> None:
    """Record the time the first body byte of a stream was produced (optional: streams are timed anyway)."""
    if "ttfb_ms" not in g.ki2api_log:
        g.ki2api_log["ttfb_ms"] = _elapsed_ms()


def upstream_error_kind(status: int, body: Any) -> str | None:
    """The kind of an upstream failure from a rendered error (OpenAI or Anthropic envelope), else None."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    code, kind = error.get("code"), error.get("type")
    if status not in _UPSTREAM_STATUSES and code != "context_length_exceeded":
        return None
    value = code if isinstance(code, str) and code else kind
    return value if isinstance(value, str) and value else f"http_{status}"


def _from_body(response: Response, fields: dict[str, Any]) -> None:
    """Fill what the view did not note from a small JSON body: usage on success, the error kind on failure (a
    streamed JSON body, a slow whole answer padded by web/padding.py, notes its usage itself)."""
    if not response.is_json or response.is_streamed or (response.content_length or 0) > _USAGE_BODY_LIMIT:
        return
    body = response.get_json(silent=True)
    if response.status_code >= 400:
        if "model" in fields and "upstream_error" not in fields:  # past validation: the upstream was called
            kind = upstream_error_kind(response.status_code, body)
            if kind:
                fields["upstream_error"] = kind
        return
    usage = body.get("usage") if isinstance(body, dict) else None
    if isinstance(usage, dict) and "tokens_in" not in fields:
        fields["tokens_in"] = usage.get("prompt_tokens", usage.get("input_tokens"))
        fields["tokens_out"] = usage.get("completion_tokens", usage.get("output_tokens"))


def _timed(body: Iterable[Any], fields: dict[str, Any], start: float) -> Iterator[Any]:
    """Pass a streamed body through, noting when its first chunk leaves and how the stream ended."""
    inner = iter(body)
    try:
        for chunk in inner:
            if chunk and "ttfb_ms" not in fields:
                fields["ttfb_ms"] = round((time.perf_counter() - start) * 1000, 1)
            yield chunk
        fields.setdefault("outcome", "error" if fields.get("stream_error") else "complete")
    except GeneratorExit:
        fields.setdefault("outcome", "client_closed")
        raise
    except Exception:
        fields.setdefault("outcome", "error")
        raise
    finally:
        close = getattr(inner, "close", None)
        if close is not None:
            close()


def _summary(fields: dict[str, Any]) -> dict[str, Any]:
    ordered = {key: fields[key] for key in _ORDER if fields.get(key) is not None}
    ordered.update((key, value) for key, value in fields.items() if key not in ordered and value is not None)
    return ordered


def upstream_opened(upstream: Any) -> None:
    """The upstream client's observer: the request's line will carry the pool account that answered (`account`).

    Every route calls the upstream through the one client, so none of them has to remember to note it. The
    name is read when the line is written: a stream may fail over to another account after the call opened.
    It is a name from the pool's configuration, never a credential.
    """
    if has_request_context() and g.get("ki2api_log") is not None:
        g.ki2api_upstream = upstream


def _account_of(upstream: Any, fields: dict[str, Any]) -> None:
    """Fill `account` from the upstream call, unless the view noted one itself."""
    account = getattr(upstream, "account", None)
    if account:
        fields.setdefault("account", account)


def init_request_log(app: Flask, requests_book: RequestBook) -> None:
    """Give each request an id (echoed as X-Request-Id), and log and count it in `requests_book` once its
    response closes."""
    app.extensions[EXTENSION] = requests_book

    @app.before_request
    def _start() -> None:
        g.ki2api_start = time.perf_counter()
        g.ki2api_log = {"request_id": _request_id()}

    @app.after_request
    def _finish(response: Response) -> Response:
        fields = g.get("ki2api_log")
        if fields is None:
            return response
        start = g.ki2api_start
        response.headers["X-Request-Id"] = fields["request_id"]
        fields.update(method=request.method, route=request.url_rule.rule if request.url_rule else "unmatched",
                      path=request.path[:200], status=response.status_code, client_ip=request.remote_addr)
        streamed = response.mimetype == "text/event-stream" and response.is_streamed
        if streamed:
            requests_book.metrics.streams.inc()
            response.response = _timed(response.response, fields, start)
        else:
            _from_body(response, fields)

        upstream = g.get("ki2api_upstream")
        wrong_key = g.get("ki2api_wrong_key", False)

        def _emit() -> None:
            _account_of(upstream, fields)
            if streamed:
                requests_book.metrics.streams.dec()
            fields["duration_ms"] = round((time.perf_counter() - start) * 1000, 1)
            fields.setdefault("ttfb_ms", fields["duration_ms"])
            summary = _summary(fields)
            # A wrong key: counted always, but logged and listed once per address and period (a guesser sends
            # thousands); WrongKeyLog sums up the rest in one line.
            if wrong_key and not requests_book.wrong_keys.note(fields.get("client_ip") or ""):
                requests_book.metrics.observe(summary)
                return
            log.info("request", extra={"fields": summary})
            requests_book.record(summary)

        if response.direct_passthrough:  # a file (static assets): Werkzeug never calls close hooks for these
            _emit()
        else:
            response.call_on_close(_emit)
        return response
