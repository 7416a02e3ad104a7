"""GET /health: is ki2api up, and is its Kiro credential usable? Never shows a secret."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    services = current_app.extensions["ki2api"]
    credential = services.tokens.status()
    return jsonify({"status": "ok", "credential": credential})
