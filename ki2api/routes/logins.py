"""The status page's account actions, each needing the key and each logged (never a secret):

POST /dashboard/logins                       start a Builder ID / IAM Identity Center device-flow login
POST /dashboard/logins/<id>/poll             one step of it: {"status": "pending"} or {"status": "done", ...}
POST /dashboard/accounts/<name>/disable      take a stored account out of service (every worker, within 1 s)
POST /dashboard/accounts/<name>/enable       put it back

The pending login lives in the state directory (accounts/pending.py), so any worker can answer the next poll.
"""
from __future__ import annotations

import logging

import requests
from flask import Blueprint, Response, current_app, g, jsonify, request

from ..accounts.files import StoreError
from ..accounts.oidc import BUILDER_ID_START_URL, DEFAULT_REGION, LoginError
from ..accounts.pending import PendingLogins, oidc_base
from ..accounts.store import AccountStore
from ..web.auth import require_key

bp = Blueprint("logins", __name__, url_prefix="/dashboard")
log = logging.getLogger(__name__)
_REGION_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def _who() -> str:
    """The key's label, for the log line of an action."""
    return str((g.get("ki2api_log") or {}).get("key", "a key"))


def _state_dir() -> str:
    return current_app.extensions["ki2api"].settings.state_dir


@bp.post("/logins")
def start_login() -> tuple[Response, int]:
    """Start a device-flow login; the page shows the code and the address."""
    require_key()
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return jsonify({"error": "the body must be a JSON object: {\"start_url\": ..., \"region\": ...}"}), 400
    start_url = str(body.get("start_url") or BUILDER_ID_START_URL).strip()
    region = str(body.get("region") or DEFAULT_REGION).strip()
    if not start_url.startswith("https://") or not region or set(region) - _REGION_CHARS:
        return jsonify({"error": "start_url must be an https address and region an AWS region"}), 400
    url = oidc_base(current_app.extensions["ki2api"].settings.oidc_url, region)
    try:
        with requests.Session() as session:
            started = PendingLogins(_state_dir()).start(session, region, start_url, url)
    except LoginError as exc:
        return jsonify({"error": str(exc)}), 502
    log.info("status page: %s started a device-flow login (%s, %s)", _who(), start_url, region)
    return jsonify(started), 200


@bp.post("/logins/<login_id>/poll")
def poll_login(login_id: str) -> tuple[Response, int]:
    """One step of a login started here: pending, done (with the new account's name), or failed."""
    require_key()
    pending = PendingLogins(_state_dir())
    try:
        with requests.Session() as session:
            status, entry, flow = pending.poll(session, login_id)
    except StoreError as exc:
        return jsonify({"status": "failed", "error": str(exc)}), 404
    except LoginError as exc:
        log.info("status page: a device-flow login failed: %s", exc)
        return jsonify({"status": "failed", "error": str(exc)}), 200
    if status == "pending" or entry is None or flow is None:
        return jsonify({"status": "pending"}), 200
    kind = "builder-id" if flow.start_url.rstrip("/") == BUILDER_ID_START_URL else "idc"
    stored, added = AccountStore(_state_dir()).add(entry, f"login:{kind}")
    log.info("status page: %s added account %s by a device-flow login", _who(), stored.name) if added else \
        log.info("status page: a device-flow login was account %s, stored already", stored.name)
    return jsonify({"status": "done", "account": stored.name, "added": added}), 200


@bp.post("/accounts/<name>/disable")
def disable(name: str) -> tuple[Response, int]:
    """Take a stored account out of service."""
    return _set_enabled(name, False)


@bp.post("/accounts/<name>/enable")
def enable(name: str) -> tuple[Response, int]:
    """Put a stored account back in service."""
    return _set_enabled(name, True)


def _set_enabled(name: str, enabled: bool) -> tuple[Response, int]:
    require_key()
    try:
        AccountStore(_state_dir()).set_enabled(name, enabled)
    except StoreError:
        return jsonify({"error": f"no stored account named {name!r}: accounts from KIRO_ACCOUNTS_FILE or "
                                 "KIRO_TOKEN_DIR are changed there"}), 404
    current_app.extensions["ki2api.store"].sync()  # this worker at once; the others at their next request
    log.info("status page: %s %s account %s", _who(), "enabled" if enabled else "disabled", name)
    return jsonify({"account": name, "enabled": enabled}), 200
