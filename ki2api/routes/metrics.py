"""GET /metrics: Prometheus text for every gunicorn worker; needs the API key unless METRICS_PUBLIC=true."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, Response, current_app, request

from ..auth import key_is_valid, presented_key
from ..errors import AuthenticationError
from ..metrics import CONTENT_TYPE
from ..accounts.status import account_rows
from ..requestlog import book

bp = Blueprint("metrics", __name__)


def require_key() -> None:
    """Raise 401 unless the request carries one of the configured API keys."""
    if not key_is_valid(presented_key(request.headers), current_app.extensions["ki2api"].settings.api_keys):
        raise AuthenticationError("Invalid or missing API key: send 'Authorization: Bearer <key>'",
                                  code="invalid_api_key")


def account_states() -> Mapping[str, Mapping[str, Any]]:
    """Each Kiro account's state and credential status (no secrets), by account name, as this worker sees it."""
    services = current_app.extensions["ki2api"]
    pool = getattr(services, "pool", None)
    if pool is None:
        return {"default": services.tokens.status()}
    return {row["name"]: row for row in account_rows(pool)}


@bp.get("/metrics")
def metrics() -> Response:
    if not current_app.extensions["ki2api"].settings.metrics_public:
        require_key()
    states = account_states()
    body = book().metrics.render(accounts=lambda: states)
    return Response(body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
