"""ki2api: an OpenAI-compatible gateway to the Claude models of a Kiro subscription.

Importing the package loads only the standard library: gunicorn's master imports ki2api.settings
(config/gunicorn.conf.py) before it forks the workers, and flask, requests and the modules built on them
must be imported first in a worker, after gevent has patched it. create_app imports them when it runs.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ApiError, InvalidRequest
from .settings import Settings

if TYPE_CHECKING:
    import requests
    from flask import Flask

    from .disconnect import WatchedAdapter
    from .accounts.credits import UsagePoller
    from .accounts.pool import AccountPool
    from .accounts.token_manager import TokenManager
    from .upstream.client import CodeWhispererClient

log = logging.getLogger(__name__)
# Set by config/gunicorn.conf.py's when_ready once the master has warned about the default key for its real
# listeners, so that the workers (which inherit it) do not repeat the warning about HOST.
KEY_WARNED_ENV = "KI2API_DEFAULT_KEY_WARNED"


@dataclass(frozen=True)
class Services:
    """What the views need, built once per worker process by create_app."""

    settings: Settings
    tokens: TokenManager  # the first account's (the only one without a pool)
    client: CodeWhispererClient
    pool: AccountPool
    usage: UsagePoller


def _session(pool_size: int) -> tuple[requests.Session, WatchedAdapter]:
    from .disconnect import WatchedAdapter
    from .upstream.session import UpstreamSession

    session = UpstreamSession()  # reads proxy settings once, not per call (BENCHMARKS.md)
    adapter = WatchedAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def _anthropic_path() -> bool:
    """Requests under /v1/messages get Anthropic's error envelope even where no blueprint matched (404, 405)."""
    from flask import request

    return request.path == "/v1/messages" or request.path.startswith("/v1/messages/")


def _register_errors(app: Flask) -> None:
    from flask import Response, request
    from werkzeug.exceptions import HTTPException

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


def _warn_default_key(settings: Settings) -> None:
    """Warn about the default key for HOST, unless gunicorn's master already did for its real listeners."""
    if os.environ.get(KEY_WARNED_ENV):
        return
    warning = settings.default_key_warning([(settings.host, settings.port)])
    if warning:
        log.warning("%s", warning)


def _register_blueprints(app: Flask, settings: Settings) -> None:
    from .routes import anthropic, dashboard, health, meta, metrics, openai

    for blueprint in (openai.bp, anthropic.bp, health.bp, dashboard.bp, metrics.bp):
        app.register_blueprint(blueprint)
    meta.register(app, settings.debug_endpoints)


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, token manager, upstream client, blueprints and error handlers."""
    from flask import Flask

    from .accounts.build import build_pool
    from .accounts.credits import UsagePoller
    from .cors import init_cors
    from .disconnect import init_disconnect_watch
    from .proxies import trust_proxies
    from .ratelimit import init_failed_key_limit
    from .requestlog import init_request_log
    from .upstream.client import CodeWhispererClient

    settings = config or Settings.from_env(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    # As many pooled upstream connections as a worker holds streams (gunicorn's worker_connections default):
    # with 256, streams beyond the 256th opened a fresh connection each time and urllib3 logged it.
    session, adapter = _session(pool_size=4000)
    pool = build_pool(settings, session)
    usage = UsagePoller(pool, settings, session)
    client = CodeWhispererClient(settings, pool, session)
    adapter.watch(client.url)  # a chat call ends when its client leaves; refreshes and usage polls never do
    app.extensions["ki2api"] = Services(settings, pool.accounts[0].tokens, client, pool, usage)
    app.before_request(usage.ensure_started)  # the first request runs after gevent patched threading
    _register_blueprints(app, settings)
    _register_errors(app)
    init_request_log(app)
    trust_proxies(app, settings.trusted_proxies)
    init_cors(app, settings.cors_origins)
    init_disconnect_watch(app)
    init_failed_key_limit(app, settings)
    _warn_default_key(settings)
    return app


__all__ = ["create_app", "Settings", "InvalidRequest"]
