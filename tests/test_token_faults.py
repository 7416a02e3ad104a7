"""Credentials under faults (issue 19, items 1-3): a shared lock that cannot be had, a failing or hanging refresh
endpoint met by several workers, a token file that cannot be parsed. Each TokenManager here stands for one worker
process (its own memory), sharing the state directory as workers do."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from ki2api.accounts.redis_state import RedisState
from ki2api.accounts.token_manager import TokenManager
from ki2api.accounts.token_store import TokenStore
from ki2api.errors import AuthenticationError, UpstreamUnavailable
from ki2api.settings import Settings
from tests.helpers.credentials import ACCESS, REFRESH, write_token_file
from tests.helpers.together import all_at_once, status_in_process

NEW_ACCESS = "aoaAAAAAfake-access-1"
CORRUPT = '{"accessToken": "aoaAAAAAide-halfway-thro'  # the IDE was stopped halfway through writing


def _calls(fake) -> int:
    stats = fake.stats()
    return stats["refresh_calls"] + stats["oidc_calls"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(settings: Settings, share=None) -> TokenManager:
    store = TokenStore(settings.token_file, settings.state_dir, settings.access_token, settings.refresh_token,
                       share=share)
    return TokenManager(settings, requests.Session(), store=store)


# -- 1. the shared lock cannot be had ----------------------------------------------------------------------------------

def test_redis_down_without_a_shared_token_file_refuses_to_refresh_with_503(settings, tmp_path, fake_upstream):
    """Env tokens are shared between replicas through Redis alone: with Redis down nothing serialises them."""
    env = replace(settings, token_file=str(tmp_path / "absent.json"), access_token=ACCESS, refresh_token=REFRESH)
    share = RedisState(f"redis://127.0.0.1:{_closed_port()}/0", "ki2api", env.state_dir)
    manager = _worker(env, share)
    stale = manager.current()
    with pytest.raises(UpstreamUnavailable) as info:
        manager.refresh(stale)
    assert info.value.status == 503 and info.value.retry_after and info.value.retry_after > 0
    assert "Redis" in info.value.message
    assert _calls(fake_upstream) == 0  # the rotating refresh token was not spent


def test_redis_down_with_a_shared_token_file_refreshes_once_under_its_lock(settings, token_file, tmp_path,
                                                                          fake_upstream):
    """Two replicas (own state directories) sharing the token file and a dead Redis: the file's lock serialises."""
    write_token_file(token_file, expires_in=-60)
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    replicas = [_worker(s, RedisState(url, "ki2api", s.state_dir))
                for s in (settings, replace(settings, state_dir=str(tmp_path / "other-state")))]
    tokens = all_at_once(2, lambda i: replicas[i].current().access_token)
    assert tokens == [NEW_ACCESS, NEW_ACCESS]
    assert _calls(fake_upstream) == 1


# -- 2. a failing refresh endpoint, several workers --------------------------------------------------------------------

def test_a_failed_refresh_is_not_repeated_by_another_worker(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_status=500)
    workers = [_worker(settings) for _ in range(4)]
    for worker in workers:
        with pytest.raises(UpstreamUnavailable) as info:
            worker.current()
        assert info.value.retry_after and info.value.retry_after > 0
    assert _calls(fake_upstream) == 1  # one round, one call, however many workers


def test_workers_waiting_on_a_hanging_refresh_give_up_with_it(settings, token_file, fake_upstream):
    # A token the fake does not know, so the late answer cannot spend the next test's refresh token.
    write_token_file(token_file, refresh="aorAAAAAslow-refresh-token", expires_in=-60)
    fake_upstream.reset(refresh_delay=3.0)
    quick = replace(settings, refresh_timeout=1.0)
    workers = [_worker(quick) for _ in range(4)]

    def ask(i: int) -> float:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            workers[i].current()
        return time.monotonic() - started

    waited = all_at_once(4, ask)
    assert _calls(fake_upstream) == 1
    assert max(waited) < 2.0, waited  # one refresh timeout, not one per worker in turn


def test_the_shared_failure_cooldown_ends_and_the_next_round_calls_again(settings, token_file, fake_upstream,
                                                                        monkeypatch):
    from ki2api.accounts import token_manager
    monkeypatch.setattr(token_manager, "FAILURE_COOLDOWN", 0.2)
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_status=500)
    first, second = _worker(settings), _worker(settings)
    with pytest.raises(UpstreamUnavailable):
        first.current()
    time.sleep(0.3)  # the cooldown's own length, made short: no race involved
    fake_upstream.reset(refresh_status=None)
    assert second.current().access_token == NEW_ACCESS
    assert _calls(fake_upstream) == 1


# -- 3. a token file that cannot be parsed -----------------------------------------------------------------------------

def test_every_worker_serves_the_same_login_while_the_token_file_is_corrupt(settings, token_file, fake_upstream):
    write_token_file(token_file)
    running = _worker(settings)
    assert running.current().access_token == ACCESS
    token_file.write_text(CORRUPT)
    fresh = _worker(settings)  # a worker started after the file broke: nothing in memory
    assert fresh.current().access_token == ACCESS
    assert running.current().access_token == ACCESS
    reports = [running.status(), fresh.status(), status_in_process(settings)]
    for report in reports:
        assert report["token_file"] == "unreadable", report
        assert "not valid JSON" in report["error"] and report["needs_login"] is False
    assert token_file.read_text() == CORRUPT


def test_a_corrupt_token_file_with_no_login_kept_is_401_on_every_worker(settings, token_file, fake_upstream):
    token_file.write_text(CORRUPT)
    for worker in (_worker(settings), _worker(settings)):
        with pytest.raises(AuthenticationError, match="not valid JSON"):
            worker.current()
        assert worker.status()["token_file"] == "unreadable"


def test_a_refresh_never_writes_over_a_token_file_ki2api_cannot_parse(settings, token_file, fake_upstream, caplog):
    write_token_file(token_file)
    worker = _worker(settings)
    stale = worker.current()
    token_file.write_text(CORRUPT)
    fake_upstream.reset(access_tokens=[NEW_ACCESS], refresh_token=REFRESH)  # Kiro revoked the access token
    assert worker.refresh(stale).access_token == NEW_ACCESS
    assert token_file.read_text() == CORRUPT  # the IDE's half-written login is not lost
    assert "cannot be parsed" in caplog.text and str(Path(settings.state_dir)) in caplog.text
    assert _worker(settings).current().access_token == NEW_ACCESS  # every worker uses the refreshed one
    write_token_file(token_file, access="aoaAAAAAide-new-login", refresh="aorAAAAAide-new-login")
    assert _worker(settings).current().access_token == "aoaAAAAAide-new-login"  # the IDE's new login wins


def test_the_health_report_says_the_token_file_is_unreadable(settings, token_file, fake_upstream):
    from ki2api.accounts.status import token_file_warning
    write_token_file(token_file)
    worker = _worker(settings)
    worker.current()
    assert worker.status()["token_file"] == "ok" and token_file_warning("default", worker.status()) is None
    token_file.write_text(CORRUPT)
    warning = token_file_warning("default", worker.status())
    assert warning and str(token_file) in warning and json.dumps(warning)
