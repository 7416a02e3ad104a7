"""Fixtures of the integration tests only (the gateway fixtures are in tests/conftest.py: the browser test uses them)."""
from __future__ import annotations

import pytest

from tests.helpers.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port; fails under CI=true if it is not installed."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
