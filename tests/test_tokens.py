"""TokenManager against the real fake Kiro: loading, refreshing once under contention, write-back, errors, status."""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from ki2api.accounts.credential import Credential, format_expiry, parse_expiry
from ki2api.accounts.token_manager import TokenManager
from ki2api.errors import AuthenticationError, UpstreamError, UpstreamUnavailable
from ki2api.settings import Settings
from tests.helpers.credentials import ACCESS, REFRESH, iso, write_token_file
from tests.helpers.together import all_at_once, status_in_process, tokens_in_processes

NEW_ACCESS, NEW_REFRESH = "aoaAAAAAfake-access-1", "aorAAAAAfake-refresh-1"
CLIENT_ID, CLIENT_SECRET = "test-client-id-0001", "test-client-secret-0001"
ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
EXPIRES_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class RecordingSession(requests.Session):
    """A real session that also remembers what it sent (the fake records chat requests only)."""

    def __init__(self, offline: bool = False) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.offline = offline

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.sent.append({"method": method, "url": url, "json": kwargs.get("json")})
        if self.offline:
            raise requests.ConnectionError(f"offline: {url}")
        return super().request(method, url, *args, **kwargs)


def relogin(path: Path, **kwargs: Any) -> None:
    """The IDE writes a new login; the mtime moves on by a second so the change is certain to be seen."""
    before = path.stat().st_mtime_ns
    write_token_file(path, **kwargs)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def write_idc(token_file: Path, client_id_hash: str | None = "a1b2c3d4", expires_in: float = -60,
              region: str = "us-east-1", companion: str | None = None) -> Path:
    """An IdC (Builder ID) login with its client registration next to it."""
    data = {"accessToken": ACCESS, "refreshToken": REFRESH, "expiresAt": _iso_in(expires_in),
            "authMethod": "IdC", "provider": "BuilderId", "region": region}
    if client_id_hash:
        data["clientIdHash"] = client_id_hash
    token_file.write_text(json.dumps(data))
    name = companion or f"{client_id_hash}.json"
    (token_file.parent / name).write_text(json.dumps(
        {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "expiresAt": _iso_in(86400 * 90)}))
    return token_file


def _iso_in(seconds: float) -> str:
    return iso(datetime.now(timezone.utc) + timedelta(seconds=seconds))


@pytest.fixture
def manager(settings):
    return TokenManager(settings, requests.Session())


def _calls(fake) -> int:
    stats = fake.stats()
    return stats["refresh_calls"] + stats["oidc_calls"]


# -- loading ---------------------------------------------------------------------------------------------------------

def test_social_token_file_is_loaded_without_a_refresh(manager, fake_upstream):
    credential = manager.current()
    assert (credential.access_token, credential.refresh_token) == (ACCESS, REFRESH)
    assert (credential.auth_method, credential.source, credential.profile_arn) == ("social", "file", ARN)
    assert credential.expires_at is not None and credential.expires_at.tzinfo is not None
    assert _calls(fake_upstream) == 0


def test_repr_never_shows_secrets():
    credential = Credential(ACCESS, REFRESH, None, "idc", ARN, "us-east-1", CLIENT_ID, CLIENT_SECRET, "file")
    text = repr(credential)
    assert all(secret not in text for secret in (ACCESS, REFRESH, CLIENT_ID, CLIENT_SECRET))
    assert "idc" in text


@pytest.mark.parametrize("raw, expected", [
    ("2025-12-31T02:32:45.144Z", datetime(2025, 12, 31, 2, 32, 45, 144000, tzinfo=timezone.utc)),
    ("2025-12-31T02:32:45Z", datetime(2025, 12, 31, 2, 32, 45, tzinfo=timezone.utc)),
    ("2025-12-31T04:32:45+02:00", datetime(2025, 12, 31, 2, 32, 45, tzinfo=timezone.utc)),
    ("2025-12-31T02:32:45", datetime(2025, 12, 31, 2, 32, 45, tzinfo=timezone.utc)),
    ("soon", None), (None, None), (1767148365, None),
])
def test_expires_at_is_parsed_as_aware_utc(raw, expected):
    assert parse_expiry(raw) == expected


def test_expires_at_is_written_like_the_ide():
    assert format_expiry(datetime(2025, 12, 31, 2, 32, 45, 144999, tzinfo=timezone.utc)) == "2025-12-31T02:32:45.144Z"


def test_missing_file_is_a_clear_authentication_error(settings, tmp_path, fake_upstream):
    missing = tmp_path / "nowhere" / "kiro-auth-token.json"
    manager = TokenManager(replace(settings, token_file=str(missing)), requests.Session())
    with pytest.raises(AuthenticationError) as info:
        manager.current()
    message = info.value.message
    assert str(missing) in message and "Kiro IDE" in message
    assert "KIRO_ACCESS_TOKEN" in message and "KIRO_REFRESH_TOKEN" in message
    status = manager.status()
    assert (status["loaded"], status["needs_login"], status["source"]) == (False, True, None)
    assert str(missing) in status["error"]
    assert _calls(fake_upstream) == 0


def test_token_file_is_reloaded_when_the_user_logs_in_again(manager, token_file):
    assert manager.current().access_token == ACCESS
    relogin(token_file, access="aoaAAAAAnew-login-access", refresh="aorAAAAAnew-login-refresh")
    credential = manager.current()
    assert (credential.access_token, credential.refresh_token) == ("aoaAAAAAnew-login-access",
                                                                   "aorAAAAAnew-login-refresh")


# -- env credentials ---------------------------------------------------------------------------------------------------

def test_env_tokens_override_the_file(settings, fake_upstream):
    env = replace(settings, access_token="aoaAAAAAenv-access", refresh_token="aorAAAAAenv-refresh")
    manager = TokenManager(env, requests.Session())
    credential = manager.current()
    assert (credential.access_token, credential.refresh_token) == ("aoaAAAAAenv-access", "aorAAAAAenv-refresh")
    assert (credential.source, credential.expires_at, credential.profile_arn) == ("env", None, ARN)
    assert (manager.status()["source"], manager.status()["path"]) == ("env", None)
    assert _calls(fake_upstream) == 0


def test_env_refresh_token_alone_refreshes_at_first_use_and_shares_it(settings, tmp_path, fake_upstream):
    fake_upstream.reset(refresh_token="aorAAAAAenv-refresh-only")
    env = replace(settings, token_file=str(tmp_path / "absent.json"), refresh_token="aorAAAAAenv-refresh-only")
    assert TokenManager(env, requests.Session()).current().access_token == NEW_ACCESS
    state_files = list(Path(env.state_dir).glob("env-*.json"))
    assert len(state_files) == 1
    assert stat.S_IMODE(state_files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(env.state_dir).stat().st_mode) == 0o700
    other_worker = TokenManager(env, requests.Session()).current()
    assert (other_worker.access_token, other_worker.refresh_token) == (NEW_ACCESS, NEW_REFRESH)
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert not (tmp_path / "absent.json").exists()


# -- refresh and write-back --------------------------------------------------------------------------------------------

def test_expired_token_is_refreshed_and_written_back_with_fields_preserved(manager, token_file, fake_upstream):
    data = json.loads(write_token_file(token_file, expires_in=-60).read_text())
    token_file.write_text(json.dumps({**data, "futureField": {"kept": True}}))
    token_file.chmod(0o600)
    credential = manager.current()
    assert (credential.access_token, credential.refresh_token) == (NEW_ACCESS, NEW_REFRESH)
    assert fake_upstream.stats()["refresh_calls"] == 1
    saved = json.loads(token_file.read_text())
    assert (saved["accessToken"], saved["refreshToken"], saved["profileArn"]) == (NEW_ACCESS, NEW_REFRESH, ARN)
    assert (saved["provider"], saved["authMethod"], saved["futureField"]) == ("Github", "social", {"kept": True})
    assert EXPIRES_AT.match(saved["expiresAt"])
    remaining = (parse_expiry(saved["expiresAt"]) - datetime.now(timezone.utc)).total_seconds()
    assert 3500 < remaining <= 3600
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    left = sorted(p.name for p in token_file.parent.iterdir())  # no temporary file left behind, only the lock
    assert left == [token_file.name, f"{token_file.name}.lock"]
    status = manager.status()
    assert status["last_refresh"]["ok"] is True and status["last_refresh"]["error"] is None


def test_token_within_the_margin_is_refreshed_early(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=120)  # margin is 300 s
    assert manager.current().access_token == NEW_ACCESS
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_token_outside_the_margin_is_not_refreshed(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=600)
    assert manager.current().access_token == ACCESS
    assert _calls(fake_upstream) == 0


def test_failed_early_refresh_keeps_serving_the_unexpired_token(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=120)
    fake_upstream.reset(refresh_status=503)
    assert manager.current().access_token == ACCESS
    assert manager.status()["last_refresh"]["ok"] is False


def test_idc_refresh_uses_the_companion_file_and_the_oidc_endpoint(settings, token_file, fake_upstream):
    write_idc(token_file)
    session = RecordingSession()
    credential = TokenManager(settings, session).current()
    assert (credential.auth_method, credential.access_token, credential.client_id) == ("idc", NEW_ACCESS, CLIENT_ID)
    assert fake_upstream.stats()["oidc_calls"] == 1 and fake_upstream.stats()["refresh_calls"] == 0
    assert session.sent == [{"method": "POST", "url": fake_upstream.oidc_url, "json": {
        "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "grantType": "refresh_token", "refreshToken": REFRESH}}]
    saved = json.loads(token_file.read_text())
    assert (saved["refreshToken"], saved["clientIdHash"], saved["authMethod"]) == (NEW_REFRESH, "a1b2c3d4", "IdC")


def test_idc_without_client_id_hash_finds_another_registration(settings, token_file, fake_upstream):
    write_idc(token_file, client_id_hash=None, companion="d0c5a1b2.json")
    assert TokenManager(settings, requests.Session()).current().access_token == NEW_ACCESS
    assert fake_upstream.stats()["oidc_calls"] == 1


def test_idc_without_a_registration_asks_for_a_login(settings, token_file, fake_upstream):
    write_idc(token_file)
    (token_file.parent / "a1b2c3d4.json").unlink()
    with pytest.raises(AuthenticationError, match="client registration"):
        TokenManager(settings, requests.Session()).current()
    assert _calls(fake_upstream) == 0


def test_idc_outside_us_east_1_refreshes_in_its_region(settings, token_file):
    write_idc(token_file, region="eu-west-1")
    session = RecordingSession(offline=True)
    with pytest.raises(UpstreamUnavailable):
        TokenManager(replace(settings, oidc_url=Settings.oidc_url), session).current()
    assert session.sent[0]["url"] == "https://oidc.eu-west-1.amazonaws.com/token"


# -- refresh once ------------------------------------------------------------------------------------------------------

def test_fifty_threads_on_an_expired_token_refresh_once(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_delay=0.3)  # every thread is waiting while the one refresh is in flight
    tokens = all_at_once(50, lambda i: manager.current().access_token)
    assert set(tokens) == {NEW_ACCESS}
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_two_managers_sharing_the_file_refresh_once(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_delay=0.3)
    managers = [TokenManager(settings, requests.Session()) for _ in range(2)]
    tokens = all_at_once(20, lambda i: managers[i % 2].current().access_token)
    assert set(tokens) == {NEW_ACCESS}
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_refresh_of_a_stale_token_someone_else_replaced_does_not_call(settings, fake_upstream):
    first, second = (TokenManager(settings, requests.Session()) for _ in range(2))
    stale = first.current()
    assert second.refresh(stale).access_token == NEW_ACCESS
    assert first.refresh(stale).access_token == NEW_ACCESS
    assert second.refresh(stale).access_token == NEW_ACCESS
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_separate_processes_on_an_expired_file_refresh_once(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_delay=0.5)
    assert tokens_in_processes([settings] * 4) == [NEW_ACCESS] * 4
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert json.loads(token_file.read_text())["refreshToken"] == NEW_REFRESH


# -- errors ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("idc", [False, True])
def test_dead_refresh_token_needs_login_and_is_not_retried(settings, token_file, fake_upstream, idc):
    if idc:
        write_idc(token_file)
    else:
        write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_token="aorAAAAAa-token-from-another-login")
    manager = TokenManager(settings, requests.Session())
    with pytest.raises(AuthenticationError, match="log in again in Kiro IDE") as info:
        manager.current()
    assert "no longer valid" in info.value.message and REFRESH not in info.value.message
    status = manager.status()
    assert status["needs_login"] is True and status["last_refresh"]["ok"] is False
    with pytest.raises(AuthenticationError):
        manager.current()
    assert _calls(fake_upstream) == 1


def test_a_new_login_clears_needs_login(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_token="aorAAAAAthe-next-login")
    with pytest.raises(AuthenticationError):
        manager.current()
    relogin(token_file, refresh="aorAAAAAthe-next-login", expires_in=-60)
    assert manager.current().access_token == NEW_ACCESS
    assert manager.status()["needs_login"] is False


@pytest.mark.parametrize("state", [
    {"refresh_status": 500},
    {"refresh_status": 502, "refresh_body": "<html>bad gateway</html>"},
    {"refresh_status": 200, "refresh_body": "<html>not json</html>"},
    {"refresh_status": 200, "refresh_body": '{"accessToken": "aoaAAAAAno-expiry"}'},
])
def test_server_errors_and_garbage_are_unavailable(manager, token_file, fake_upstream, state):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(**state)
    with pytest.raises(UpstreamUnavailable) as info:
        manager.current()
    assert info.value.status == 503
    assert ACCESS not in info.value.message and REFRESH not in info.value.message
    assert json.loads(token_file.read_text())["accessToken"] == ACCESS


def test_a_failure_is_not_repeated_by_queued_callers(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_status=500)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            manager.current()
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_unexpected_refusal_is_an_upstream_error(manager, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_status=400, refresh_body='{"error": "invalid_request"}')
    with pytest.raises(UpstreamError, match="invalid_request"):
        manager.current()


def test_timeout_is_unavailable(settings, token_file, fake_upstream):
    # A token the fake does not know, so its late answer cannot spend the next test's refresh token.
    write_token_file(token_file, refresh="aorAAAAAslow-refresh-token", expires_in=-60)
    fake_upstream.reset(refresh_delay=1.0)
    manager = TokenManager(replace(settings, refresh_timeout=0.2), requests.Session())
    with pytest.raises(UpstreamUnavailable, match="did not answer"):
        manager.current()


def test_unreachable_endpoint_is_unavailable(settings, token_file):
    write_token_file(token_file, expires_in=-60)
    manager = TokenManager(replace(settings, refresh_url="http://127.0.0.1:9/refreshToken"), requests.Session())
    with pytest.raises(UpstreamUnavailable, match="Could not reach") as info:
        manager.current()
    assert REFRESH not in info.value.message


# -- status and storage ----------------------------------------------------------------------------------------------

def test_status_reports_health_but_never_a_secret(settings, token_file, fake_upstream):
    write_idc(token_file)
    manager = TokenManager(settings, requests.Session())
    manager.current()
    status = manager.status()
    assert set(status) == {"loaded", "source", "path", "auth_method", "expires_at", "expires_in_seconds",
                           "last_refresh", "needs_login", "error", "token_file"}
    assert (status["loaded"], status["source"], status["path"]) == (True, "file", str(token_file))
    assert (status["auth_method"], status["needs_login"], status["error"]) == ("idc", False, None)
    assert EXPIRES_AT.match(status["expires_at"]) and 3500 < status["expires_in_seconds"] <= 3600
    text = json.dumps(status)
    for secret in (ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH, CLIENT_ID, CLIENT_SECRET, "aoaAAAAA", "aorAAAAA"):
        assert secret not in text


def test_unwritable_token_file_falls_back_to_a_state_file(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    token_file.chmod(0o400)
    assert TokenManager(settings, requests.Session()).current().access_token == NEW_ACCESS
    assert json.loads(token_file.read_text())["accessToken"] == ACCESS
    state_files = list(Path(settings.state_dir).glob("file-*.json"))
    assert len(state_files) == 1 and stat.S_IMODE(state_files[0].stat().st_mode) == 0o600
    assert json.loads(state_files[0].read_text())["refreshToken"] == NEW_REFRESH
    later = TokenManager(settings, requests.Session()).current()
    assert (later.access_token, later.refresh_token) == (NEW_ACCESS, NEW_REFRESH)
    assert fake_upstream.stats()["refresh_calls"] == 1
    # A newer IDE login (new access and refresh tokens: a login never reuses a refresh token) wins over the state file.
    relogin(token_file, access="aoaAAAAAnew-login-access", refresh="aorAAAAAnew-login-refresh")
    assert TokenManager(settings, requests.Session()).current().access_token == "aoaAAAAAnew-login-access"


def test_a_later_copy_of_an_older_token_does_not_beat_the_refreshed_one(settings, token_file, fake_upstream):
    """A token file restored or copied after a refresh (same login, older link) must not undo the refresh:
    its refresh token was spent by the rotation."""
    write_token_file(token_file, expires_in=-60)
    token_file.chmod(0o400)
    assert TokenManager(settings, requests.Session()).current().access_token == NEW_ACCESS
    token_file.chmod(0o600)
    relogin(token_file, expires_in=-60)  # the original login again, written later than the refresh
    assert TokenManager(settings, requests.Session()).current().access_token == NEW_ACCESS
    assert fake_upstream.stats()["refresh_calls"] == 1


# -- status is the same from every worker ------------------------------------------------------------------------

def test_every_worker_reports_the_refresh_another_worker_made(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    refresher = TokenManager(settings, requests.Session())
    assert refresher.current().access_token == NEW_ACCESS
    mine, other = refresher.status(), status_in_process(settings)
    assert other["last_refresh"] == mine["last_refresh"] and other["last_refresh"]["ok"] is True
    assert EXPIRES_AT.match(other["last_refresh"]["at"])
    assert (other["needs_login"], other["error"]) == (False, None)
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_every_worker_reports_a_login_another_worker_found_dead(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_token="aorAAAAAa-token-from-another-login")
    with pytest.raises(AuthenticationError):
        TokenManager(settings, requests.Session()).current()
    other = status_in_process(settings)  # a worker that never called the refresh endpoint itself
    assert other["needs_login"] is True and other["last_refresh"]["ok"] is False
    assert "no longer valid" in other["error"] and REFRESH not in json.dumps(other)
    assert fake_upstream.stats()["refresh_calls"] == 1
