"""GET /health: is ki2api up, and which Kiro accounts can serve? Never shows a secret."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..accounts.status import health_report
from ..diagnostics.local import health_warnings

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    services = current_app.extensions["ki2api"]
    report = health_report(services.pool)
    models = services.catalog.report()  # where the served models come from (the service, or the built-in table)
    report["warnings"] += models.pop("warnings")
    last_answer = getattr(services.client.session, "last_answer", None)  # Kiro's last Date header, for the clock
    report["warnings"] += health_warnings(report["accounts"], services.settings, last_answer)
    status = "degraded" if report["warnings"] else "ok"
    # The first account's credential, as its row has it (from the same read of the shared state).
    return jsonify({"status": status, "credential": report["accounts"][0]["credential"], **report, "models": models})
