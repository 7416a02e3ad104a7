"""Shared fixtures: settings -> app -> client, the fake Kiro upstream, and a clean environment."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ki2api.app import create_app
from ki2api.settings import Settings
from tests.fake_kiro import FakeKiro

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "kiro-capture"  # the repository's own copy (tests/fixtures/README.md)
ACCESS = "aoaAAAAAtest-access-token-0001"
REFRESH = "aorAAAAAtest-refresh-token-0001"
KEY = "test-key-123"


def iso(dt: datetime) -> str:
    """expiresAt as the Kiro IDE writes it."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def write_token_file(path: Path, access: str = ACCESS, refresh: str = REFRESH, expires_in: float = 3600) -> Path:
    """A social-login token file like the IDE's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "accessToken": access, "refreshToken": refresh,
        "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK",
        "expiresAt": iso(datetime.now(timezone.utc) + timedelta(seconds=expires_in)),
        "authMethod": "social", "provider": "Github"}, indent=2))
    return path


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
                    usage_interval=0.0)  # no background usage polling: it would outlive the test


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
def redis_server(tmp_path):
    """A real redis-server on a free loopback port; fails under CI=true if it is not installed."""
    from tests.helpers.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
