"""The Anthropic Messages API: POST /v1/messages (streamed or whole) and /v1/messages/count_tokens.

Streams read the upstream through web/heartbeat.py, unlike /v1/chat/completions (routes/openai.py):
Anthropic's stream has a `ping` event and its clients expect one during long silences (a model thinking),
so a timer must run while the upstream read blocks. The read therefore runs in a greenlet of its own and
hands each part over through a queue; the request's greenlet writes parts as they arrive and a ping after
each STREAM_KEEPALIVE of silence. The cost per part (a queue hand-off and a switch) is in docs/performance.md.
The OpenAI side tells silences in its read instead (upstream/reading.py, routes/openai.py), which is cheaper per
paced frame; this side keeps its greenlet because it also lets a burst go out in one write (`parts.waiting`).
"""
from __future__ import annotations

import itertools
from typing import Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from ..observability.credits import note_credits, with_credits
from ..observability.requestlog import first_byte, note
from ..translate.anthropic_request import parse_conversation, parse_options
from ..translate.anthropic_response import PING, Event, EventStream, collect_message
from ..translate.answer import Answer, Part, prompt_estimate
from ..translate.cache_points import fit as fit_cache_points
from ..translate.conversation import conversation_key
from ..translate.history import build_payload
from ..translate.reasoning import anthropic_ask, apply_reasoning
from ..translate.websearch import search_query
from ..web.auth import presented_key, require_key
from ..web.disconnect import watch_client
from ..web.envelopes import anthropic_body
from ..web.heartbeat import Heartbeat
from ..web.padding import whole_answer
from ..web.sse import PROXY_HEADERS, format_event, in_band_error
from .body import image_bounds, json_body
from .models import served_model
from .websearch import anthropic_answer, offer_search, search_loop

bp = Blueprint("anthropic", __name__, url_prefix="/v1")
_END = object()  # the answer had no parts at all

bp.before_request(require_key)


@bp.post("/messages")
def messages() -> Response:
    body = json_body()
    options = parse_options(body)
    model = served_model(options.model)
    query = search_query(body)  # Claude Code's WebSearch: Kiro's search answers it (routes/websearch.py)
    if query is not None:
        return anthropic_answer(body, model.name, options.stream, query)
    conversation = parse_conversation(body, options.thinking_budget)
    apply_reasoning(conversation, anthropic_ask(body), model.info.request_fields_schema, model.name,
                    options.max_tokens)
    searching = offer_search(body, conversation)  # the model may search the web (routes/websearch.py)
    payload = fit_cache_points(build_payload(conversation, model.kiro_id, image_bounds()), model.info)
    note(model=model.name, stream=options.stream)
    answer = Answer(prompt_estimate(payload), model.context_window, options.stop_sequences, options.max_tokens,
                    thinking=conversation.thinking_budget is not None, names=conversation.names)
    services = current_app.extensions["ki2api"]
    key = conversation_key(conversation, presented_key(request.headers) or "")
    upstream = services.client.send(payload, key)
    if searching is not None:
        upstream = search_loop(upstream, payload, searching, key, answer)
    note(upstream_status=upstream.status)
    if not options.stream:  # padded with leading whitespace if slower than STREAM_KEEPALIVE (web/padding.py)
        whole = whole_answer(upstream, lambda events: collect_message(answer, events, model.name),
                             services.settings.stream_keepalive, answer.usage, anthropic_body)
        return whole if isinstance(whole, Response) else with_credits(jsonify(whole), answer.usage)
    # Stopping early (client gone) aborts the upstream: its events end quietly, no error counted on the account.
    parts = Heartbeat(answer.parts(upstream.events()), services.settings.stream_keepalive, upstream.abort)
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
    model = served_model(options.model)
    conversation = parse_conversation(body, options.thinking_budget)
    apply_reasoning(conversation, anthropic_ask(body), model.info.request_fields_schema, model.name, None)
    offer_search(body, conversation)  # its tool is in the prompt too
    payload = build_payload(conversation, model.kiro_id, image_bounds())
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
        note_credits(answer.usage)
    except Exception as exc:  # the 200 is already out: end the stream in-band, whatever went wrong
        error = in_band_error(exc)
        yield "".join(held) + format_event(anthropic_body(error), "error") + _format(stream.cut(answer))
    finally:
        parts.close()
