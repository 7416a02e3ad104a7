"""GET /health: is ki2api up, and which Kiro accounts can serve? Never shows a secret."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..pool_status import health_report

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    services = current_app.extensions["ki2api"]
    report = health_report(services.pool)
    status = "degraded" if report["warnings"] else "ok"
    return jsonify({"status": status, "credential": services.tokens.status(), **report})
