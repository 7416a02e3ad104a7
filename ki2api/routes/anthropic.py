"""The Anthropic Messages API: POST /v1/messages (streamed or whole) and /v1/messages/count_tokens."""
from __future__ import annotations

import itertools
import logging
from typing import Any, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException

from ..auth import key_is_valid, presented_key
from ..disconnect import watch_client
from ..errors import (ApiError, AuthenticationError, InvalidRequest, ModelNotFound, PayloadTooLarge,
                      PermissionDenied, RateLimited, UpstreamTimeout, UpstreamUnavailable)
from ..heartbeat import Heartbeat
from ..models import resolve_model
from ..requestlog import first_byte, note
from ..sse import PROXY_HEADERS, format_event, in_band_error
from ..translate.anthropic_request import parse_conversation, parse_options
from ..translate.anthropic_response import PING, Event, EventStream, collect_message
from ..translate.answer import Answer, Part, prompt_estimate
from ..translate.history import build_payload
from .body import json_body

log = logging.getLogger(__name__)
bp = Blueprint("anthropic", __name__, url_prefix="/v1")
_END = object()  # the answer had no parts at all

# Most specific first: Anthropic's error type for each of ki2api's errors (README, "Anthropic errors").
_TYPES: tuple[tuple[type[ApiError], str], ...] = (
    (PayloadTooLarge, "request_too_large"),
    (InvalidRequest, "invalid_request_error"),
    (ModelNotFound, "not_found_error"),
    (AuthenticationError, "authentication_error"),
    (PermissionDenied, "permission_error"),
    (RateLimited, "rate_limit_error"),
    (UpstreamUnavailable, "overloaded_error"),
    (UpstreamTimeout, "timeout_error"),
)
_HTTP_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large"}


def error_type(exc: ApiError) -> str:
    """Anthropic's `error.type` for an ApiError; `api_error` for anything unforeseen."""
    for cls, name in _TYPES:
        if isinstance(exc, cls):
            return name
    return "api_error"


def _envelope(kind: str, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    fields = g.get("ki2api_log")
    if fields:
        body["request_id"] = fields["request_id"]
    return body


def error_body(exc: ApiError) -> dict[str, Any]:
    """Anthropic's error envelope, with this request's id."""
    return _envelope(error_type(exc), exc.message)


def render_error(exc: ApiError) -> Response:
    """An ApiError as an Anthropic error response, with Retry-After where known."""
    response = jsonify(error_body(exc))
    response.status_code = exc.status
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


@bp.errorhandler(ApiError)
def _api(exc: ApiError) -> Response:
    return render_error(exc)


@bp.errorhandler(HTTPException)
def render_http_error(exc: HTTPException) -> Response:
    """A routing or protocol error (404, 405, 413 ...) in Anthropic's envelope; a 405 keeps its Allow header."""
    status = exc.code or 500
    kind = _HTTP_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    response = jsonify(_envelope(kind, exc.description or exc.name))
    response.status_code = status
    allow = dict(exc.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(ApiError("Internal error in ki2api; see the server log"))


@bp.before_request
def _require_key() -> None:
    if not key_is_valid(presented_key(request.headers), current_app.extensions["ki2api"].settings.api_keys):
        raise AuthenticationError("invalid x-api-key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'")


@bp.post("/messages")
def messages() -> Response:
    body = json_body()
    options = parse_options(body)
    model = resolve_model(options.model)
    conversation = parse_conversation(body, options.thinking_budget)
    payload = build_payload(conversation, model.kiro_id)
    note(model=model.name, stream=options.stream)
    answer = Answer(prompt_estimate(payload), model.context_window, options.stop_sequences, options.max_tokens,
                    thinking=options.thinking_budget is not None, names=conversation.names)
    services = current_app.extensions["ki2api"]
    upstream = services.client.send(payload)
    note(upstream_status=upstream.status)
    if not options.stream:
        try:
            return jsonify(collect_message(answer, upstream.events(), model.name))
        finally:
            upstream.close()
    # Stopping early (client gone) aborts the upstream: its events end quietly, no error counted on the account.
    parts = Heartbeat(answer.parts(upstream.events()), services.settings.ping_interval, upstream.abort)
    watch_client(parts.close)  # a client gone during a silence ends the upstream call at once, not at the next ping
    first = _first(parts)
    response = Response(stream_with_context(_sse(EventStream(model.name), answer, parts, first)),
                        mimetype="text/event-stream", headers=PROXY_HEADERS)
    response.call_on_close(parts.close)  # also when the body is never iterated
    return response


@bp.post("/messages/count_tokens")
def count_tokens() -> Response:
    body = json_body()
    options = parse_options(body, count_only=True)
    model = resolve_model(options.model)
    payload = build_payload(parse_conversation(body, options.thinking_budget), model.kiro_id)
    note(model=model.name)
    return jsonify({"input_tokens": prompt_estimate(payload)})


def _format(events: list[Event]) -> str:
    return "".join(format_event(data, name) for name, data in events)


def _first(parts: Heartbeat[Part]) -> Part | None | object:
    """Wait for the first part (at most one ping interval) before the 200 goes out, so an upstream
    failure in the first frames still gets its own status; None means the upstream is slow."""
    try:
        return next(parts, _END)
    except BaseException:
        parts.close()
        raise


def _sse(stream: EventStream, answer: Answer, parts: Heartbeat[Part], first: Part | None | object
         ) -> Iterator[str]:
    """Forward each part's events as it arrives (the parts already waiting together, in one write), a ping after
    each silence of the ping interval; after the first byte, a failure becomes one `error` event, then the
    message ends as cut short (`max_tokens`)."""
    held = [_format(stream.start(answer.prompt_estimate))]  # events made, not yet written
    timed = False
    try:
        for part in itertools.chain([first], parts) if first is not _END else ():
            events = stream.part(part) if part is not None else [PING]
            if events:
                held.append(_format(events))
            if held and not parts.waiting:  # what came in one burst goes out in one write
                yield "".join(held)
                held.clear()
                if not timed:
                    first_byte()
                    timed = True
        if parts.closed:  # the client went away (watch_client): nobody to finish the message for
            note(outcome="client_closed")
            return
        held.append(_format(stream.finish(answer)))
        yield "".join(held)
        first_byte()
        note(tokens_in=answer.usage.input_tokens, tokens_out=answer.usage.output_tokens)
    except Exception as exc:  # the 200 is already out: end the stream in-band, whatever went wrong
        error = in_band_error(exc)
        yield "".join(held) + format_event(error_body(error), "error") + _format(stream.cut(answer))
    finally:
        parts.close()
