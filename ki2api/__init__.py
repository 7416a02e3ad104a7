"""ki2api: an OpenAI-compatible gateway to the Claude models of a Kiro subscription."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import requests
from flask import Flask, Response, request
from requests.adapters import HTTPAdapter
from werkzeug.exceptions import HTTPException

from .errors import ApiError, InvalidRequest
from .requestlog import init_request_log
from .settings import Settings
from .tokens import TokenManager
from .upstream.client import CodeWhispererClient

log = logging.getLogger(__name__)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Services:
    """What the views need, built once per worker process by create_app."""

    settings: Settings
    tokens: TokenManager
    client: CodeWhispererClient


def _session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _register_errors(app: Flask) -> None:
    from .routes.openai import render_error

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        error = ApiError(exc.description or exc.name)
        error.status, error.type = exc.code or 500, "invalid_request_error"
        return render_error(error)

    @app.errorhandler(ApiError)
    def _api(exc: ApiError) -> Response:
        return render_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(ApiError("Internal error in ki2api; see the server log"))


def _warn_default_key(settings: Settings) -> None:
    if not settings.uses_default_key:
        return
    if settings.host in _LOOPBACK:
        log.warning("API_KEY is the public default 'ki2api-key-2024'; set your own key")
    else:
        log.warning("SECURITY: API_KEY is the public default 'ki2api-key-2024' and ki2api listens on %s, "
                    "beyond loopback: anyone who can reach this port can spend your Kiro quota. "
                    "Set API_KEY to a secret of your own.", settings.host)


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, token manager, upstream client, blueprints and error handlers."""
    settings = config or Settings.from_env(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    session = _session(pool_size=256)
    tokens = TokenManager(settings, session)
    app.extensions["ki2api"] = Services(settings, tokens, CodeWhispererClient(settings, tokens, session))

    from .routes import health, openai
    app.register_blueprint(openai.bp)
    app.register_blueprint(health.bp)
    _register_errors(app)
    init_request_log(app)
    _warn_default_key(settings)
    return app


__all__ = ["create_app", "Settings", "InvalidRequest"]
