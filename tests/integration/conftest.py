"""Fixtures of the integration tests only (the gateway fixtures are in tests/conftest.py: the browser test uses them)."""
from __future__ import annotations

import pytest

from tests.helpers.gateway import module_gateway
from tests.helpers.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port; fails under CI=true if it is not installed."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_proxy(redis_server, monkeypatch):
    """A switchable stand-in in front of the real redis-server; the probe is driven by the test (probe_once)."""
    from ki2api.accounts import redis_link
    from tests.helpers.redis_proxy import RedisProxy

    monkeypatch.setattr(redis_link, "RETRY_DOWN_AFTER", 3600.0)
    proxy = RedisProxy(redis_server.port)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def shared_gateway(fake_kiro_server, tmp_path_factory, request):
    """One gunicorn for a whole module (starting one per test costs seconds), with the module's `GATEWAY_ENV`
    settings if it has them; each test resets the fake (`gw`, `fake_upstream`)."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with module_gateway(fake_kiro_server, folder, **getattr(request.module, "GATEWAY_ENV", {})) as gateway:
        yield gateway


@pytest.fixture
def gw(shared_gateway, fake_upstream):
    """The module's shared gateway, the fake reset for this test (a module starting its own overrides this)."""
    return shared_gateway
