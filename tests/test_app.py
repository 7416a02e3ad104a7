"""The application factory's wiring: observers passed in where the client and the accounts are built."""
from __future__ import annotations

from dataclasses import fields, replace

from ki2api.app import Services, create_app, upstream_session
from ki2api.observability.requestlog import upstream_opened


def test_services_hold_the_pool_and_no_single_token_manager(app):
    assert [f.name for f in fields(Services)] == ["settings", "client", "pool", "usage", "catalog"]


def test_the_client_tells_the_request_log_of_every_call_it_opens(app):
    assert app.extensions["ki2api"].client.on_open is upstream_opened


def test_refresh_calls_are_counted_by_the_apps_metrics(app):
    pool = app.extensions["ki2api"].pool
    metrics = app.extensions["ki2api.requests"].metrics
    assert all(account.tokens.on_refresh == metrics.token_refreshed for account in pool.accounts)


def test_the_upstream_pool_holds_as_many_connections_as_a_worker_takes(settings):
    app = create_app(replace(settings, worker_connections=123))
    adapter = app.extensions["ki2api"].client.session.get_adapter("https://q.us-east-1.amazonaws.com")
    assert adapter._pool_maxsize == 123
    session, adapter = upstream_session(7)
    assert session.get_adapter("http://x") is adapter and adapter._pool_maxsize == 7


def test_the_watched_url_is_the_chat_endpoint_only(app):
    client = app.extensions["ki2api"].client
    assert client.session.get_adapter(client.url).watched == client.url
