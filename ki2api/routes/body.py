"""Reading a request's JSON body with clear errors for every way it can be wrong, within the limits."""
from __future__ import annotations

import json
import re
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ..translate.image_bounds import ImageBounds
from ..translate.tools import loads_finite
from ..web.body_limits import BodyLimits, check

_ACCEPTED_TYPES = ("application/json", "")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # how JSON spells a UTF-16 surrogate (raw UTF-8 cannot)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # what is left of one once the parser has joined the pairs


class RequestTimeout(InvalidRequest):
    """The client took longer than BODY_READ_TIMEOUT to send its body (408)."""

    status = 408
    code = "request_timeout"


def json_body() -> dict[str, Any]:
    """The body as a JSON object within the limits: 415 other content type, 413 too big, 408 too slow, 400 bad."""
    if request.mimetype not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {request.mimetype!r}")
    settings = current_app.extensions["ki2api"].settings
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is {request.content_length} bytes, larger than the limit of {limit} "
                              "bytes (MAX_BODY_BYTES)")
    raw = _read(settings.body_read_timeout, limit)
    body = _parse(raw)
    if _SURROGATE_ESCAPE.search(raw):
        body = _replace_lone_surrogates(body)
    check(body, BodyLimits(settings.max_messages, settings.max_tools, settings.max_image_bytes))
    return body


def image_bounds() -> ImageBounds:
    """How many images a request may send Kiro (MAX_IMAGES, IMAGE_HISTORY_TURNS)."""
    settings = current_app.extensions["ki2api"].settings
    return ImageBounds(settings.max_images, settings.image_history_turns)


def _read(timeout: float, limit: int | None) -> bytes:
    """The whole body, giving a slow sender `timeout` seconds in all (under gevent; elsewhere reads are local)."""
    deadline = _deadline(timeout)
    try:
        raw = request.get_data(cache=False)  # not kept on the request, which a stream keeps alive to its end
        if request.content_length is None and limit is not None and len(raw) >= limit:
            request.stream.read(1)  # a chunked body stops silently at the limit: one more byte tells if it was cut
        return raw
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)") from None
    except ClientDisconnected:
        raise InvalidRequest("The client disconnected before sending the whole body") from None
    except BaseException as exc:
        if deadline is not None and exc is deadline:
            raise RequestTimeout(f"The request body did not arrive within {timeout:g} s (BODY_READ_TIMEOUT)") from None
        raise
    finally:
        if deadline is not None:
            deadline.close()


def _deadline(seconds: float) -> Any:
    """A started gevent.Timeout when the socket module is gevent's (gunicorn's gevent worker), else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return None
    if not monkey.is_module_patched("socket"):
        return None
    return Timeout.start_new(seconds)


def _replace_lone_surrogates(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with each lone UTF-16 surrogate (JSON allows `"\\ud800"` alone; UTF-8 cannot carry it) in any string,
    key or value, replaced by U+FFFD, so Kiro, the echoed fields and stored responses all see the same text."""
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return _LONE_SURROGATE.sub("\ufffd", value)
        return value

    stack: list[Any] = [body]
    while stack:  # iterative: a body may be nested as deep as the parser allows
        node = stack.pop()
        if isinstance(node, dict):
            items = [(clean(key), clean(value)) for key, value in node.items()]
            node.clear()
            node.update(items)  # keys in their order
            stack.extend(node.values())
        elif isinstance(node, list):
            node[:] = [clean(item) for item in node]
            stack.extend(node)
    return body


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        body = loads_finite(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except ValueError as exc:  # NaN, Infinity, 1e999, or an integer of more digits than Python converts
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("Request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body
