"""The OpenAI-compatible API: /v1/chat/completions (/v1/models is in routes/models.py, for both APIs).

Streams read the upstream in the request's own greenlet, unlike /v1/messages (routes/anthropic.py). The
keep-alives (`: keep-alive` comments after each STREAM_KEEPALIVE of Kiro's silence) need no second greenlet:
the read itself tells a silence (upstream/reading.py waits for the socket with the interval as its limit) and
the silence comes up through the translation as a SILENCE part, turned into a comment here. That saves the
queue hand-off per part and the cross-greenlet close of web/heartbeat.py (measured at 11 µs more per paced
frame, docs/performance.md); a client gone during a silence is still noticed (watch_client aborts the
upstream). Whole answers slower than the interval are padded with leading whitespace (web/padding.py).
"""
from __future__ import annotations

from typing import Any, Iterator

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from ..observability.credits import note_credits, with_credits
from ..observability.requestlog import first_byte, note
from ..translate.answer import Answer, prompt_estimate
from ..translate.conversation import conversation_key
from ..translate.history import build_payload
from ..translate.openai_request import parse_conversation, parse_options, split_thinking_suffix
from ..translate.openai_response import ChunkStream, collect_message
from ..translate.reasoning import apply_reasoning, openai_ask
from ..translate.websearch import grounding, openai_query
from ..upstream.client import UpstreamStream
from ..upstream.events import Event, prime
from ..web.auth import presented_key, require_key
from ..web.disconnect import watch_client
from ..web.envelopes import openai_body
from ..web.padding import whole_answer
from ..web.sse import DONE, KEEP_ALIVE, PROXY_HEADERS, format_event, in_band_error
from .body import image_bounds, json_body
from .models import served_model
from .websearch import CitingChunkStream, cite, search

bp = Blueprint("openai", __name__, url_prefix="/v1")


bp.before_request(require_key)


@bp.post("/chat/completions")
def chat_completions() -> Response:
    body = json_body()
    options = parse_options(body)
    model = served_model(options.base_model)
    conversation = parse_conversation(body)
    ask = openai_ask(body, split_thinking_suffix(options.model)[1])
    apply_reasoning(conversation, ask, model.info.request_fields_schema, options.model, options.max_tokens)
    query = openai_query(body)  # web_search_options: Kiro's search first, its results in the prompt
    results = search(query) if query is not None else None
    if results is not None:
        conversation.instruction = "\n\n".join(t for t in (conversation.instruction, grounding(query, results)) if t)
    payload = build_payload(conversation, model.kiro_id, image_bounds())
    note(model=model.name, stream=options.stream)
    answer = Answer(prompt_estimate(payload), model.context_window, options.stop, options.max_tokens,
                    thinking=conversation.thinking_budget is not None, names=conversation.names)
    key = conversation_key(conversation, presented_key(request.headers) or "")
    upstream = current_app.extensions["ki2api"].client.send(payload, key)
    watch_client(upstream.abort)  # a client gone mid-silence ends the upstream call at once, not as an account error
    note(upstream_status=upstream.status)
    keepalive = current_app.extensions["ki2api"].settings.stream_keepalive
    if not options.stream:
        def completion(events: Iterator[Event]) -> dict[str, Any]:
            whole = collect_message(answer, events, options.model)
            return cite(whole, results) if results is not None else whole

        whole = whole_answer(upstream, completion, keepalive, answer.usage, openai_body)
        return whole if isinstance(whole, Response) else with_credits(jsonify(whole), answer.usage)
    chunks = (ChunkStream(options.model, options.include_usage) if results is None
              else CitingChunkStream(options.model, options.include_usage, results))
    # A failure before the first upstream event (or keep-alive interval) is still a proper HTTP error.
    events = prime(upstream.events(keepalive))
    response = Response(stream_with_context(_sse(chunks, answer, upstream, events)), mimetype="text/event-stream",
                        headers=PROXY_HEADERS)
    response.call_on_close(upstream.close)  # also when the body is never iterated (the client left first)
    return response


def _sse(chunks: ChunkStream, answer: Answer, upstream: UpstreamStream, events: Iterator[Event]) -> Iterator[str]:
    """Forward each chunk as it is made, and note the usage told (or, without include_usage, that would have
    been told); after the first byte, any failure becomes one error event, then a `length` finish (the answer
    was cut short) and [DONE]."""
    try:
        timed = False
        for chunk in chunks.chunks(answer, events):
            if chunk is None:  # Kiro silent for the keep-alive interval
                yield KEEP_ALIVE
                continue
            yield format_event(chunk)
            if not timed:  # once, not per chunk: `g` lookups are not free on a hot path (docs/performance.md)
                first_byte()
                timed = True
        note(tokens_in=answer.usage.input_tokens, tokens_out=answer.usage.output_tokens)  # the usage chunk's
        note_credits(answer.usage)
        yield DONE
    except Exception as exc:  # the 200 is already out: end the stream in-band, whatever went wrong
        error = in_band_error(exc)
        yield format_event(openai_body(error))
        yield format_event(chunks.chunk({}, "length"))
        yield DONE
    finally:
        upstream.close()
