"""The status page: GET / and /dashboard (HTML, says only "running" without a key), GET /dashboard/data (JSON, key),
and POST /dashboard/accounts/<name>/clear (key): a person ends an account's quarantine.

The page is static HTML + JS in ki2api/static/; it keeps the key the person types in sessionStorage and sends it
as a Bearer header. The JSON holds no token, secret or key: the page fills the client settings with the key
the person typed.
"""
from __future__ import annotations

import os
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..models import model_names
from ..observability.requestlog import book
from ..web.auth import require_key
from .metrics import account_states

bp = Blueprint("dashboard", __name__)

DEFAULT_MODEL = "claude-sonnet-4-5"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.get("/")
@bp.get("/dashboard")
def page() -> Response:
    response = current_app.send_static_file("dashboard.html")
    response.headers.update(PAGE_HEADERS)
    return response


@bp.get("/dashboard/data")
def data() -> Response:
    require_key()
    requests_book = book()
    settings = current_app.extensions["ki2api"].settings
    accounts = [{"name": name, **state} for name, state in account_states().items()]
    response = jsonify({
        "status": "running",
        "server": {"started_at": int(requests_book.started), "uptime_seconds": int(time.time() - requests_book.started),
                   "worker_pid": os.getpid(), "workers": settings.workers},
        "accounts": accounts,
        "stored_accounts": sorted(current_app.extensions["ki2api.store"].names),  # may be disabled/enabled here
        "totals": requests_book.metrics.totals(),
        "recent_requests": requests_book.recent.latest(),
        "recent_errors": requests_book.errors.latest(),
        "models": model_names(current_app.extensions["ki2api"].catalog.view().models),
        "client": client_settings(request.host_url),
    })
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/dashboard/accounts/<name>/clear")
def clear_account(name: str) -> tuple[Response, int]:
    """A person says an account may serve again: its quarantine (Kiro suspended it) and any rest end."""
    require_key()
    if not current_app.extensions["ki2api"].pool.clear(name):
        return jsonify({"cleared": False, "error": f"no Kiro account named {name!r}"}), 404
    return jsonify({"cleared": True, "account": name}), 200


def client_settings(host_url: str) -> dict[str, Any]:
    """The addresses clients need, as seen through the URL this request came in by (so proxies are honoured)."""
    root = host_url.rstrip("/")
    return {"api_root": root, "base_url": f"{root}/v1", "chat_completions_url": f"{root}/v1/chat/completions",
            "messages_url": f"{root}/v1/messages", "default_model": DEFAULT_MODEL}
