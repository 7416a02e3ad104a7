"""Fixtures that start ki2api for real: gunicorn, gevent workers, the fake Kiro on loopback."""
from __future__ import annotations

import pytest

from tests.conftest import KEY
from tests.helpers.gateway import Gateway


@pytest.fixture
def gateway_env(fake_upstream, token_file, tmp_path):
    """The environment a deployment would set, pointed at the fake Kiro."""
    return {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake_upstream.url,
            "KIRO_REFRESH_URL": fake_upstream.refresh_url, "KIRO_OIDC_URL": fake_upstream.oidc_url,
            "KI2API_STATE_DIR": str(tmp_path / "state"), "UPSTREAM_READ_TIMEOUT": "10",
            "KIRO_USAGE_INTERVAL": "0"}  # tests that want the background usage poll turn it on


@pytest.fixture
def start_gateway(gateway_env, tmp_path):
    """Start gunicorn with N gevent workers; every one started is stopped at teardown."""
    started: list[Gateway] = []

    def start(workers: int = 1, **env: str) -> Gateway:
        gw = Gateway({**gateway_env, **env}, tmp_path / f"gunicorn-{len(started)}.log", workers=workers)
        started.append(gw)
        return gw.wait_ready()

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(start_gateway):
    return start_gateway()
