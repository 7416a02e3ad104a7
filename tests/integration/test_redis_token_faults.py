"""Replicas sharing a token through a real Redis (issue 19, item 1): a token one replica shared is used by every
other the moment it is in Redis, with no per-process recheck window; with Redis stopped, replicas that share no
token file refuse to refresh (503 with Retry-After) rather than spend the rotating refresh token twice."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis
import requests

from ki2api.accounts.build import build_pool
from ki2api.accounts.credential import fingerprint
from ki2api.accounts.redis_state import RedisState
from ki2api.accounts.token_manager import TokenManager
from ki2api.accounts.token_store import TokenStore
from ki2api.errors import ApiError, UpstreamUnavailable
from tests.helpers.credentials import ACCESS, REFRESH, write_token_file
from tests.helpers.together import all_at_once

pytestmark = pytest.mark.integration
NEW_ACCESS = "aoaAAAAAfake-access-1"


def env_replica(settings, tmp_path, name: str, url: str) -> TokenManager:
    """A replica given the login as KIRO_ACCESS_TOKEN/KIRO_REFRESH_TOKEN, with its own state directory."""
    state_dir = str(tmp_path / name)
    ours = replace(settings, token_file=str(tmp_path / "absent.json"), state_dir=state_dir, access_token=ACCESS,
                   refresh_token=REFRESH)
    store = TokenStore(ours.token_file, state_dir, ACCESS, REFRESH, share=RedisState(url, "test", state_dir))
    return TokenManager(ours, requests.Session(), store)


def test_redis_stopped_and_the_token_revoked_the_refresh_token_is_not_spent_twice(settings, tmp_path, fake_upstream,
                                                                                 redis_server):
    one, two = (env_replica(settings, tmp_path, n, redis_server.url) for n in ("one", "two"))
    stale = [r.current() for r in (one, two)]
    redis_server.stop()
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH)  # Kiro revoked the access token

    def refresh(i: int) -> str:
        try:
            return (one, two)[i].refresh(stale[i]).access_token
        except UpstreamUnavailable as exc:
            assert exc.retry_after and exc.retry_after > 0
            return "503"

    assert all_at_once(2, refresh) == ["503", "503"]
    assert fake_upstream.stats()["refresh_calls"] == 0
    redis_server.start()
    for replica in (one, two):
        store = replica.store
        store.share.link.probe_once()  # what the background probe does within RETRY_DOWN_AFTER
    assert one.refresh(stale[0]).access_token == NEW_ACCESS
    assert two.current().access_token == NEW_ACCESS  # at once: no rejected request, no second refresh
    assert fake_upstream.stats()["refresh_calls"] == 1


def file_replica(settings, tmp_path, name: str, url: str) -> TokenManager:
    """A replica with its own copy of the token file and its own state directory, as docs/deployment.md sets up."""
    token_file = write_token_file(tmp_path / name / "kiro-auth-token.json")
    ours = replace(settings, token_file=str(token_file), state_dir=str(tmp_path / name / "state"))
    store = TokenStore(ours.token_file, ours.state_dir, None, None, share=RedisState(url, "test", ours.state_dir))
    return TokenManager(ours, requests.Session(), store)


def test_replicas_with_their_own_token_file_copies_spend_the_token_once_while_redis_is_stopped(
        settings, tmp_path, fake_upstream, redis_server):
    one, two = (file_replica(settings, tmp_path, n, redis_server.url) for n in ("one", "two"))
    assert one.refresh(one.current()).access_token == NEW_ACCESS  # the record in Redis: one's, under one's lock
    assert two.current().access_token == NEW_ACCESS
    redis_server.stop()
    fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAfake-refresh-1")  # Kiro revokes the access token
    stale = [r.current() for r in (one, two)]

    def refresh(i: int) -> str:
        try:
            return (one, two)[i].refresh(stale[i]).access_token
        except UpstreamUnavailable as exc:
            assert exc.retry_after and exc.retry_after > 0 and "own copy" in exc.message
            return "503"

    fresh, refused = all_at_once(2, refresh)
    assert refused == "503" and fresh != "503"  # one refreshes under its lock, two refuses
    assert fake_upstream.stats()["refresh_calls"] == 1
    redis_server.start()
    one.store.share.link.probe_once()
    two.store.share.link.probe_once()
    one.publish()  # what the pool does when Redis returns
    assert two.current().access_token == fresh
    assert two.status()["needs_login"] is False


def test_a_token_another_replica_shared_is_used_at_once(settings, tmp_path, fake_upstream, redis_server):
    one, two = (env_replica(settings, tmp_path, n, redis_server.url) for n in ("one", "two"))
    assert one.current().access_token == two.current().access_token == ACCESS
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH)
    assert one.refresh(one.current()).access_token == NEW_ACCESS
    assert two.current().access_token == NEW_ACCESS  # before Kiro has to reject the old one
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_a_disabled_replica_serves_again_the_moment_redis_holds_a_newer_login(settings, tmp_path, fake_upstream,
                                                                           redis_server):
    """Replica two refreshed, but Redis lost its record (restarted empty); replica one found the old refresh token
    dead and looked for a newer login in vain. When the newer login reaches Redis, one serves with it at once,
    not after a per-process recheck interval."""
    client = redis.Redis.from_url(redis_server.url)
    pools = []
    for name in ("one", "two"):
        token_file = write_token_file(tmp_path / name / "kiro-auth-token.json", expires_in=600)
        pools.append(build_pool(replace(settings, token_file=str(token_file), state_dir=str(tmp_path / name / "s"),
                                        redis_url=redis_server.url, redis_prefix="test"), requests.Session()))
    one, two = pools
    assert one.accounts[0].tokens.fingerprint() == fingerprint(REFRESH)
    tokens = two.accounts[0].tokens
    assert tokens.refresh(tokens.current()).access_token == NEW_ACCESS
    record = client.get("test:tokens:default")
    client.delete("test:tokens:default")
    one.write("default", "disabled", {"why": "Kiro's refresh token is no longer valid", "at": time.time(),
                                      "fingerprint": fingerprint(REFRESH)})
    with pytest.raises(ApiError):
        one.acquire()  # disabled: no newer login anywhere yet
    client.set("test:tokens:default", record)
    lease = one.acquire()  # now, not 30 s later
    assert lease.account.tokens.current().access_token == NEW_ACCESS
    lease.release()
    assert fake_upstream.stats()["refresh_calls"] == 1
