"""Reading a request's JSON body with clear errors for every way it can be wrong."""
from __future__ import annotations

import json
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType


def json_body() -> dict[str, Any]:
    """Return the body as a JSON object; 415 for another content type, 413 too big, 400 not JSON."""
    if request.mimetype not in ("application/json", ""):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {request.mimetype!r}")
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        limit = request.max_content_length
        raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes") from None
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("Request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body
