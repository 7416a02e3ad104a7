"""OpenAI's Responses API: POST /v1/responses (streamed or whole), stored responses, input tokens, compaction.

Streams read the upstream in the request's own greenlet, as /v1/chat/completions does (routes/openai.py),
with `: keep-alive` comments during Kiro's silences the same way (the Responses stream has no keep-alive
event of its own); a whole answer slower than STREAM_KEEPALIVE is padded (web/padding.py). A stored response (`store`, true by default) is written
before the stream's last event, so a client that continues at once with `previous_response_id` finds it on
any worker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from flask import Blueprint, Flask, Response, current_app, jsonify, request, stream_with_context
from werkzeug.routing import BaseConverter

from ..errors import InvalidRequest, NotFound
from ..observability.credits import with_credits
from ..observability.requestlog import first_byte, note
from ..responses_store import ResponseStore, build_store
from ..settings import Settings
from ..translate.answer import Answer, prompt_estimate
from ..translate.conversation import conversation_key
from ..translate.history import build_payload
from ..translate.openai_request import split_thinking_suffix
from ..translate.reasoning import apply_reasoning, openai_ask
from ..translate.reasoning_items import encode_reasoning
from ..translate.responses_request import (ResponsesOptions, function_tools, input_items, parse_conversation,
                                           parse_options, tools_echo, with_ids)
from ..translate.responses_response import ResponseState, collect_response, new_id, usage_dict
from ..translate.search_loop import SearchOptions, responses_options
from ..upstream.client import UpstreamStream
from ..upstream.events import SILENCE, Event, prime
from ..web.auth import presented_key, require_key
from ..web.body_limits import LimitExceeded
from ..web.disconnect import watch_client
from ..web.envelopes import openai_body
from ..web.padding import whole_answer
from ..web.sse import KEEP_ALIVE, PROXY_HEADERS, format_event, in_band_error
from .body import image_bounds, json_body
from .models import served_model
from .websearch import offer_search, search_loop

bp = Blueprint("responses", __name__, url_prefix="/v1/responses")
EXTENSION = "ki2api.responses"
COMPACT_PROMPT = ("Summarise the conversation so far for your own later use: the task, what was decided and done, "
                  "the files, commands and results that matter, and what remains to do. Write only the summary.")

bp.before_request(require_key)


class ResponseId(BaseConverter):
    """A response id in a path: any segment but the names of the routes beside it (so OPTIONS on those lists
    only their own methods)."""

    regex = r"(?!compact$|input_tokens$)[^/]+"


def init_responses(app: Flask, settings: Settings) -> None:
    """Give the app its response store (files, or Redis with REDIS_URL) and register the blueprint."""
    app.url_map.converters["response_id"] = ResponseId
    app.extensions[EXTENSION] = build_store(settings.state_dir, settings.redis_url, settings.redis_prefix,
                                            settings.responses_ttl, settings.responses_max_bytes)
    app.register_blueprint(bp)


def _store() -> ResponseStore:
    return current_app.extensions[EXTENSION]


def _record(response_id: str) -> dict[str, Any]:
    """The stored record of `response_id`; 404 when unknown or expired."""
    record = _store().get(response_id)
    if record is None:
        raise NotFound(f"No response with id {response_id!r}: unknown, deleted, expired (RESPONSES_TTL) or "
                            "stored with store: false", param="response_id", code="response_not_found")
    return record


def _check_limits(items: list[dict[str, Any]], tools: list[dict[str, Any]]) -> None:
    """MAX_MESSAGES and MAX_IMAGE_BYTES for `input`, as body_limits checks them for `messages`; MAX_TOOLS for the
    tools once namespace groups are flattened."""
    settings = current_app.extensions["ki2api"].settings
    if len(tools) > settings.max_tools:
        raise LimitExceeded(f"'tools' holds {len(tools)} functions (namespaces counted by their functions); this "
                            f"server takes at most {settings.max_tools} (MAX_TOOLS)", param="tools",
                            code="too_many_tools")
    if len(items) > settings.max_messages:
        raise LimitExceeded(f"'input' has {len(items)} items; this server takes at most {settings.max_messages} "
                            "(MAX_MESSAGES)", param="input", code="too_many_messages")
    for i, item in enumerate(items):
        for j, part in enumerate(item.get("content") if isinstance(item.get("content"), list) else ()):
            url = part.get("image_url") if isinstance(part, dict) else None
            size = len(url.partition(",")[2]) * 3 // 4 if isinstance(url, str) else 0
            if size > settings.max_image_bytes:
                where = f"input[{i}].content[{j}].image_url"
                raise LimitExceeded(f"{where}: the image is about {size} bytes; this server takes images of at most "
                                    f"{settings.max_image_bytes} bytes (MAX_IMAGE_BYTES)", param=where,
                                    code="image_too_large")


def _conversation_items(body: dict[str, Any], options: ResponsesOptions) -> tuple[list[Any], list[Any]]:
    """(earlier items from previous_response_id, this request's input items)."""
    items = input_items(body)
    _check_limits(items, function_tools(body.get("tools"))[0])
    if not options.previous_response_id:
        return [], items
    record = _record(options.previous_response_id)
    earlier = record["context"] + record["input"] + record["response"]["output"]
    return earlier, items


@dataclass
class _Prepared:
    """A request checked and translated: its options, Kiro's body, the answer to walk, and what to store."""

    options: ResponsesOptions
    payload: dict[str, Any]
    conversation_key: str | None
    answer: Answer
    earlier: list[dict[str, Any]]
    items: list[dict[str, Any]]
    searching: SearchOptions | None = None


def _prepare(body: dict[str, Any]) -> _Prepared:
    """Validate and translate a Responses request body (earlier items fetched for previous_response_id)."""
    options = parse_options(body)
    model = served_model(options.base_model)
    earlier, items = _conversation_items(body, options)
    conversation = parse_conversation(body, earlier + items, options.thinking_budget)
    # `reasoning` {effort, summary} reads as OpenRouter's reasoning object does on the chat API.
    ask = openai_ask({"reasoning": body.get("reasoning")}, split_thinking_suffix(options.model)[1])
    apply_reasoning(conversation, ask, model.info.request_fields_schema, options.model, options.max_output_tokens)
    searching = offer_search(body, conversation, responses_options)  # the model may search (routes/websearch.py)
    payload = build_payload(conversation, model.kiro_id, image_bounds())
    note(model=model.name, stream=options.stream)
    answer = Answer(prompt_estimate(payload), model.context_window, [], options.max_output_tokens,
                    thinking=conversation.thinking_budget is not None, names=conversation.names)
    key = conversation_key(conversation, presented_key(request.headers) or "")
    return _Prepared(options, payload, key, answer, earlier, items, searching)


@bp.post("")
def create() -> Response:
    body = json_body()
    asked = _prepare(body)
    tools, namespaces = function_tools(body.get("tools"))
    state = ResponseState(asked.options.model, asked.options.echo, tools=tools_echo(tools), namespaces=namespaces)
    upstream = current_app.extensions["ki2api"].client.send(asked.payload, asked.conversation_key)
    if asked.searching is not None:
        upstream = search_loop(upstream, asked.payload, asked.searching, asked.conversation_key, asked.answer)
    watch_client(upstream.abort)
    note(upstream_status=upstream.status)
    saver = _Saver(asked.options.store, asked.earlier, with_ids(asked.items))
    keepalive = current_app.extensions["ki2api"].settings.stream_keepalive
    if not asked.options.stream:
        whole = whole_answer(upstream, lambda events: collect_response(state, asked.answer, events), keepalive,
                             asked.answer.usage, openai_body, saver.save)
        if isinstance(whole, Response):
            return whole
        saver.save(whole)
        return with_credits(jsonify(whole), asked.answer.usage)
    events = prime(upstream.events(keepalive))
    stream = _sse(state, asked.answer, upstream, events, saver)
    response = Response(stream_with_context(stream), mimetype="text/event-stream", headers=PROXY_HEADERS)
    response.call_on_close(upstream.close)
    return response


class _Saver:
    """Stores a finished response with the conversation that led to it (when the request asked to)."""

    def __init__(self, store: bool, earlier: list[Any], items: list[Any]) -> None:
        self.store, self.earlier, self.items = store, earlier, items

    def save(self, response: dict[str, Any]) -> None:
        if self.store and response["status"] in ("completed", "incomplete"):
            _store().put(response["id"], {"response": response, "input": self.items, "context": self.earlier})


def _sse(state: ResponseState, answer: Answer, upstream: UpstreamStream, events: Iterator[Event],
         saver: _Saver) -> Iterator[str]:
    """Each event as it is made; the response is stored before its last event. After the first byte, a failure
    ends the stream with `response.failed` carrying the error."""
    try:
        for event in state.start():
            yield format_event(event, event["type"])
        first_byte()
        for part in answer.parts(events):
            if part is SILENCE:  # Kiro silent for the keep-alive interval
                yield KEEP_ALIVE
                continue
            for event in state.part(part):
                yield format_event(event, event["type"])
        final = state.finish(answer)
        saver.save(final[-1]["response"])
        note(tokens_in=answer.usage.input_tokens, tokens_out=answer.usage.output_tokens)
        yield "".join(format_event(event, event["type"]) for event in final)
    except Exception as exc:  # the 200 is already out: end the stream in-band, whatever went wrong
        error = in_band_error(exc)
        yield "".join(format_event(event, event["type"]) for event in state.fail(error, answer))
    finally:
        upstream.close()


@bp.route("/<response_id:response_id>", methods=["GET", "DELETE"])
def by_id(response_id: str) -> Response:
    """GET: the stored response; DELETE: forget it. 404 when unknown or expired."""
    if request.method == "DELETE":
        if not _store().delete(response_id):
            _record(response_id)  # the 404
        return jsonify({"id": response_id, "object": "response.deleted", "deleted": True})
    if request.args.get("stream") in ("true", "1"):
        raise InvalidRequest("Streaming a stored response again is not supported; omit 'stream'", param="stream")
    return jsonify(_record(response_id)["response"])


@bp.get("/<response_id:response_id>/input_items")
def list_input_items(response_id: str) -> Response:
    items = list(_record(response_id)["input"])
    if request.args.get("order", "desc") == "desc":
        items.reverse()
    after = request.args.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = _limit(request.args.get("limit", "20"))
    page = items[:limit]
    return jsonify({"object": "list", "data": page, "has_more": len(items) > limit,
                    "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("'limit' must be an integer from 1 to 100", param="limit")
    return int(raw)


@bp.post("/input_tokens")
def input_tokens() -> Response:
    body = json_body()
    body.setdefault("input", [])
    asked = _prepare({**body, "stream": False})
    return jsonify({"object": "response.input_tokens", "input_tokens": prompt_estimate(asked.payload)})


@bp.post("/compact")
def compact() -> Response:
    """The conversation summarised by the model itself into one compaction item (docs/api.md, "Compaction")."""
    body = json_body()
    asked = {**body, "stream": False, "store": False, "tool_choice": "none", "text": None, "reasoning": None}
    asked["input"] = input_items(body) + [{"type": "message", "role": "user",
                                           "content": [{"type": "input_text", "text": COMPACT_PROMPT}]}]
    prepared = _prepare(asked)
    state = ResponseState(prepared.options.model, prepared.options.echo)
    upstream = current_app.extensions["ki2api"].client.send(prepared.payload, prepared.conversation_key)
    watch_client(upstream.abort)
    note(upstream_status=upstream.status)

    def compaction(events: Iterable[object]) -> dict[str, Any]:
        response = collect_response(state, prepared.answer, events)
        summary = "".join(part["text"] for item in response["output"] if item["type"] == "message"
                          for part in item["content"])
        item = {"id": new_id("cmp"), "type": "compaction", "encrypted_content": encode_reasoning(summary)}
        return {"id": new_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
                "output": [item], "usage": usage_dict(prepared.answer.usage)}

    # A long conversation's summary can take minutes: padded like every whole answer (web/padding.py).
    keepalive = current_app.extensions["ki2api"].settings.stream_keepalive
    whole = whole_answer(upstream, compaction, keepalive, prepared.answer.usage, openai_body)
    return whole if isinstance(whole, Response) else with_credits(jsonify(whole), prepared.answer.usage)
