"""GET /v1/models and /v1/models/{name}: the models the Kiro accounts may use, in OpenAI's or Anthropic's shape.

Both APIs list models on the same path. A request carrying `anthropic-version` (which Anthropic's SDKs always
send, and OpenAI's never do) gets Anthropic's shape (`{"data": [{"type": "model", ...}], "has_more",
"first_id", "last_id"}`, paged by `limit`, `after_id`, `before_id`); any other gets OpenAI's.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..errors import InvalidRequest, ModelNotFound
from ..models import CREATED, Model, ModelInfo, model_names, resolve_model
from ..web.auth import require_key

bp = Blueprint("models", __name__, url_prefix="/v1")
bp.before_request(require_key)

CREATED_AT = datetime.fromtimestamp(CREATED, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
ANTHROPIC_PAGE, ANTHROPIC_MAX_PAGE = 20, 1000  # Anthropic's default and largest `limit`


def served_model(name: object) -> Model:
    """The model a client asked for, among those the accounts may use now (404 naming them otherwise).

    A name unknown while the worker's first fetch of the lists runs (a model newer than the built-in table,
    asked for at start) waits for that fetch.
    """
    catalog = current_app.extensions["ki2api"].catalog
    try:
        return resolve_model(name, catalog.view().models)
    except ModelNotFound:
        if not catalog.wait_first_round():
            raise
    return resolve_model(name, catalog.view().models)


def wants_anthropic() -> bool:
    """True if the request comes from an Anthropic client (it sends `anthropic-version`)."""
    return "anthropic-version" in request.headers


def _extras(model: Model) -> dict[str, Any]:
    """What Kiro says of the model, beside each API's own fields."""
    info: ModelInfo = model.info
    return {"kiro_id": model.kiro_id, "context_window": info.max_input_tokens,
            "max_output_tokens": info.max_output_tokens, "input_types": list(info.input_types)}


def _display_name(kiro_id: str) -> str:
    """`claude-opus-4.7` -> `Claude Opus 4.7`."""
    return " ".join(part[:1].upper() + part[1:] for part in kiro_id.split("-"))


def _openai(model: Model) -> dict[str, Any]:
    owner = "anthropic" if model.kiro_id.startswith("claude") else "kiro"
    return {"id": model.name, "object": "model", "created": CREATED, "owned_by": owner, **_extras(model)}


def _anthropic(model: Model) -> dict[str, Any]:
    # max_input_tokens / max_tokens: Anthropic's own fields for the window and the output cap
    return {"type": "model", "id": model.name, "display_name": _display_name(model.kiro_id),
            "created_at": CREATED_AT, "max_input_tokens": model.info.max_input_tokens,
            "max_tokens": model.info.max_output_tokens, **_extras(model)}


@bp.get("/models")
def list_models() -> Response:
    models = current_app.extensions["ki2api"].catalog.view().models
    listed = [resolve_model(name, models) for name in model_names(models)]
    if not wants_anthropic():
        return jsonify({"object": "list", "data": [_openai(m) for m in listed]})
    return jsonify(_anthropic_page([_anthropic(m) for m in listed]))


@bp.get("/models/<path:name>")
def get_model(name: str) -> Response:
    model = served_model(name)
    return jsonify(_anthropic(model) if wants_anthropic() else _openai(model))


def _anthropic_page(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of Anthropic's list: `limit` entries after `after_id` or before `before_id`."""
    raw = request.args.get("limit", str(ANTHROPIC_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= ANTHROPIC_MAX_PAGE:
        raise InvalidRequest(f"limit must be an integer from 1 to {ANTHROPIC_MAX_PAGE}", param="limit")
    limit, ids = int(raw), [e["id"] for e in entries]
    after, before = request.args.get("after_id"), request.args.get("before_id")
    for given, param in ((after, "after_id"), (before, "before_id")):
        if given is not None and given not in ids:
            raise InvalidRequest(f"{param} {given!r} is not a listed model", param=param)
    if before is not None:
        end = ids.index(before)
        page, more = entries[max(0, end - limit):end], end - limit > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        page, more = entries[start:start + limit], start + limit < len(entries)
    return {"data": page, "has_more": more, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None}
