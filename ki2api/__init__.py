"""ki2api: an OpenAI-compatible gateway to the Claude models of a Kiro subscription."""
from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass

import requests
from flask import Flask, Response, request
from requests.adapters import HTTPAdapter
from werkzeug.exceptions import HTTPException

from .cors import init_cors
from .disconnect import init_disconnect_watch
from .errors import ApiError, InvalidRequest
from .proxies import trust_proxies
from .ratelimit import init_failed_key_limit
from .requestlog import init_request_log
from .settings import Settings
from .accounts import build_pool
from .pool import AccountPool
from .tokens import TokenManager
from .upstream.client import CodeWhispererClient
from .upstream.session import UpstreamSession
from .usage_limits import UsagePoller

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the views need, built once per worker process by create_app."""

    settings: Settings
    tokens: TokenManager  # the first account's (the only one without a pool)
    client: CodeWhispererClient
    pool: AccountPool
    usage: UsagePoller


def _session(pool_size: int) -> requests.Session:
    session = UpstreamSession()  # reads proxy settings once, not per call (BENCHMARKS.md)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _anthropic_path() -> bool:
    """Requests under /v1/messages get Anthropic's error envelope even where no blueprint matched (404, 405)."""
    return request.path == "/v1/messages" or request.path.startswith("/v1/messages/")


def _register_errors(app: Flask) -> None:
    from .routes import anthropic
    from .routes.openai import render_error as openai_error

    def render_error(exc: ApiError) -> Response:
        return anthropic.render_error(exc) if _anthropic_path() else openai_error(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if _anthropic_path():
            return anthropic.render_http_error(exc)
        error = ApiError(exc.description or exc.name)
        error.status, error.type = exc.code or 500, "invalid_request_error"
        response = render_error(error)
        allow = dict(exc.get_headers()).get("Allow")
        if allow:  # a 405 must say which methods the URL does take (RFC 9110)
            response.headers["Allow"] = allow
        return response

    @app.errorhandler(ApiError)
    def _api(exc: ApiError) -> Response:
        return render_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(ApiError("Internal error in ki2api; see the server log"))


def _is_loopback(host: str) -> bool:
    """True for localhost and any address in 127.0.0.0/8 or ::1."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _warn_default_key(settings: Settings) -> None:
    if not settings.uses_default_key:
        return
    if _is_loopback(settings.host):
        log.warning("API_KEY is the public default 'ki2api-key-2024'; set your own key")
        return
    log.warning("SECURITY: API_KEY is the public default 'ki2api-key-2024' and ki2api listens on %s, beyond "
                "loopback: anyone who can reach this port can spend your Kiro quota. Set API_KEY to a secret of your "
                "own (README, Security), or listen on 127.0.0.1 only (HOST=127.0.0.1).", settings.host)


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, token manager, upstream client, blueprints and error handlers."""
    settings = config or Settings.from_env(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    # As many pooled upstream connections as a worker holds streams (gunicorn's worker_connections default):
    # with 256, streams beyond the 256th opened a fresh connection each time and urllib3 logged it.
    session = _session(pool_size=4000)
    pool = build_pool(settings, session)
    usage = UsagePoller(pool, settings, session)
    app.extensions["ki2api"] = Services(settings, pool.accounts[0].tokens, CodeWhispererClient(settings, pool, session),
                                        pool, usage)
    app.before_request(usage.ensure_started)  # the first request runs after gevent patched threading

    from .routes import anthropic, health, meta, openai
    app.register_blueprint(openai.bp)
    app.register_blueprint(anthropic.bp)
    app.register_blueprint(health.bp)
    from .routes import dashboard, metrics as metrics_routes
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(metrics_routes.bp)
    meta.register(app, settings.debug_endpoints)
    _register_errors(app)
    init_request_log(app)
    trust_proxies(app, settings.trusted_proxies)
    init_cors(app, settings.cors_origins)
    init_disconnect_watch(app)
    init_failed_key_limit(app, settings.auth_fail_limit, settings.auth_fail_window, settings.api_keys)
    _warn_default_key(settings)
    return app


__all__ = ["create_app", "Settings", "InvalidRequest"]
