"""The application factory: settings, the account pool, the upstream client and its observers, routes, hooks.

Imported in the worker only (wsgi.py), after gevent has patched it: sessions, locks and clients are made
here when create_app runs, never at import time.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask

from .accounts.build import build_pool
from .accounts.live import StoreSync
from .observability.metrics import Metrics
from .observability.requestlog import RequestBook, init_request_log, upstream_opened
from .accounts.pool import AccountPool
from .routes import anthropic, dashboard, health, logins, meta, metrics, models, openai
from .routes.responses import init_responses
from .settings import KEY_WARNED_ENV, Settings
from .upstream.client import CodeWhispererClient
from .upstream.session import UpstreamSession
from .accounts.credits import UsagePoller
from .accounts.catalog import ModelCatalog
from .web.auth import key_label
from .web.cors import init_cors
from .web.disconnect import WatchedAdapter, init_disconnect_watch
from .web.envelopes import register_error_handlers
from .web.key_throttle import init_failed_key_limit
from .web.proxies import trust_proxies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the views need, built once per worker process by create_app (`app.extensions["ki2api"]`)."""

    settings: Settings
    client: CodeWhispererClient
    pool: AccountPool
    usage: UsagePoller
    catalog: ModelCatalog


def upstream_session(pool_size: int) -> tuple[UpstreamSession, WatchedAdapter]:
    """The session every upstream call shares, keeping up to `pool_size` connections per host."""
    session = UpstreamSession()
    adapter = WatchedAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session, adapter


def _warn_default_key(settings: Settings) -> None:
    """Warn about the default key for HOST, unless gunicorn's master already did for its real listeners."""
    if os.environ.get(KEY_WARNED_ENV):
        return
    warning = settings.default_key_warning([(settings.host, settings.port)])
    if warning:
        log.warning("%s", warning)


def create_app(config: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, account pool, upstream client, blueprints, error handlers and hooks."""
    settings = config or Settings.from_env(os.environ)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    requests_book = RequestBook(Metrics.from_environ())
    # One pooled connection per stream a worker may hold: beyond the pool, each call would open a fresh one.
    session, adapter = upstream_session(settings.worker_connections)
    pool = build_pool(settings, session, on_refresh=requests_book.metrics.token_refreshed)
    usage = UsagePoller(pool, settings, session)
    catalog = ModelCatalog(pool, settings, session)
    client = CodeWhispererClient(settings, pool, session, on_open=upstream_opened,
                                 on_cache_refused=requests_book.metrics.cache_points_refused)
    adapter.watch(client.url)  # a chat call ends when its client leaves; refreshes and usage polls never do
    app.extensions["ki2api"] = Services(settings, client, pool, usage, catalog)
    stored = StoreSync(pool, settings, session, on_refresh=requests_book.metrics.token_refreshed)
    stored.sync()  # accounts added by `login`/`import`; then every request looks for new ones (one stat a second)
    app.extensions["ki2api.store"] = stored
    app.before_request(stored.check)
    app.before_request(usage.ensure_started)  # the first request runs after gevent patched threading
    app.before_request(catalog.ensure_started)

    for blueprint in (openai.bp, models.bp, anthropic.bp, health.bp, dashboard.bp, metrics.bp, logins.bp):
        app.register_blueprint(blueprint)
    init_responses(app, settings)  # /v1/responses and its store of responses
    meta.register(app, settings.debug_endpoints)
    register_error_handlers(app)
    init_request_log(app, requests_book)
    trust_proxies(app, settings.trusted_proxies)
    init_cors(app, settings.cors_origins)
    init_disconnect_watch(app)
    init_failed_key_limit(app, settings)
    _warn_default_key(settings)
    for key in settings.api_keys:  # each label costs ~60 ms of PBKDF2: at the worker's start, not on a request
        key_label(key)
    return app
