"""GET /metrics: Prometheus text for every gunicorn worker; needs the API key unless METRICS_PUBLIC=true."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, Response, current_app

from ..accounts.status import account_rows
from ..observability.metrics import CONTENT_TYPE
from ..observability.requestlog import book
from ..web.auth import require_key

bp = Blueprint("metrics", __name__)


def account_states() -> Mapping[str, Mapping[str, Any]]:
    """Each Kiro account's state and credential status (no secrets), by account name, as this worker sees it."""
    return {row["name"]: row for row in account_rows(current_app.extensions["ki2api"].pool)}


@bp.get("/metrics")
def metrics() -> Response:
    if not current_app.extensions["ki2api"].settings.metrics_public:
        require_key()
    states = account_states()
    body = book().metrics.render(accounts=lambda: states)
    return Response(body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
