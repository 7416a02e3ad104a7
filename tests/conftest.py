"""Shared fixtures: settings -> app -> client, the fake Kiro, a clean environment, ki2api under gunicorn (gateway)."""
from __future__ import annotations

import os

import pytest

from ki2api.app import create_app
from ki2api.settings import Settings
from tests.fakes.kiro.process import FakeKiro
from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file
from tests.helpers.gateway import Gateway


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No test sees the developer's Kiro or ki2api variables."""
    for name in list(os.environ):
        if name.startswith(("KIRO_", "KI2API_")) or name in ("API_KEY", "PORT", "HOST", "WEB_CONCURRENCY"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fake_kiro_server():
    with FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH) as fake:
        yield fake


@pytest.fixture(autouse=True)
def kiro_saw_only_well_formed_bodies(request):
    """After every test that talked to the shared fake Kiro: it refused no body as malformed (the reasons if it did)."""
    yield
    if "fake_kiro_server" in request.fixturenames:
        malformed = request.getfixturevalue("fake_kiro_server").stats()["malformed"]
        assert malformed == [], f"ki2api sent Kiro a body it would refuse: {malformed}"


@pytest.fixture
def fake_upstream(fake_kiro_server):
    """The fake Kiro, reset to a known state: ACCESS valid, REFRESH current."""
    fake_kiro_server.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    return fake_kiro_server


@pytest.fixture
def token_file(tmp_path):
    return write_token_file(tmp_path / "sso" / "kiro-auth-token.json")


@pytest.fixture
def settings(fake_upstream, token_file, tmp_path):
    return Settings(api_keys=(KEY,), token_file=str(token_file), api_base=fake_upstream.url,
                    refresh_url=fake_upstream.refresh_url, oidc_url=fake_upstream.oidc_url,
                    state_dir=str(tmp_path / "state"), read_timeout=5.0, connect_timeout=2.0,
                    usage_interval=0.0,  # no background usage polling: it would outlive the test
                    models_interval=0.0)  # nor model-list fetching: tests that want it turn it on


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def gateway_env(fake_upstream, token_file, tmp_path):
    """The environment a deployment would set, pointed at the fake Kiro."""
    return {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake_upstream.url,
            "KIRO_REFRESH_URL": fake_upstream.refresh_url, "KIRO_OIDC_URL": fake_upstream.oidc_url,
            "KI2API_STATE_DIR": str(tmp_path / "state"), "UPSTREAM_READ_TIMEOUT": "10",
            "KIRO_USAGE_INTERVAL": "0",  # tests that want the background usage poll turn it on
            "KIRO_MODELS_INTERVAL": "0"}  # and the model-list fetch


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
