"""RedisState against a real redis-server: tokens refreshed once across "machines", lock expiry, outages."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable

import pytest
import redis
import requests

from ki2api.accounts.build import build_pool
from ki2api.accounts.credential import fingerprint
from ki2api.accounts.file_state import FileState
from ki2api.accounts.redis_state import RedisState
from ki2api.accounts.token_manager import TokenManager
from ki2api.accounts.token_store import TokenStore
from tests.helpers.credentials import REFRESH, write_token_file
from tests.helpers.together import all_at_once
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration
NEW_ACCESS, NEW_REFRESH = "aoaAAAAAfake-access-1", "aorAAAAAfake-refresh-1"


class Machine:
    """One replica's view: its own token file copy and state directory, the shared Redis."""

    def __init__(self, settings, tmp_path, name: str, url: str, expires_in: float = -60,
                 session: requests.Session | None = None) -> None:
        self.dir = tmp_path / name
        self.token_file = write_token_file(self.dir / "kiro-auth-token.json", expires_in=expires_in)
        self.settings = replace(settings, token_file=str(self.token_file), state_dir=str(self.dir / "state"))
        self.shared = RedisState(url, "test", self.settings.state_dir)
        store = TokenStore(str(self.token_file), self.settings.state_dir, None, None, share=self.shared)
        self.tokens = TokenManager(self.settings, session or requests.Session(), store)


class OnRefusal(requests.Session):
    """A session that runs `then()` when the refresh endpoint refuses a refresh token, before the caller sees
    the refusal: a deterministic "meanwhile" (the fake cannot hold a refusal, only a rotation)."""

    def __init__(self, then: Callable[[], None]) -> None:
        super().__init__()
        self.then = then
        self.refusals = 0

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        if url.endswith("/refreshToken") and response.status_code == 401:
            self.refusals += 1
            self.then()
        return response


def test_two_machines_refresh_once_and_the_second_uses_the_first_ones_token(settings, tmp_path, fake_upstream,
                                                                          redis_server):
    fake_upstream.reset(refresh_delay=0.3)
    machines = [Machine(settings, tmp_path, name, redis_server.url) for name in ("one", "two")]
    tokens = all_at_once(20, lambda i: machines[i % 2].tokens.current().access_token)
    assert set(tokens) == {NEW_ACCESS}
    assert fake_upstream.stats()["refresh_calls"] == 1
    record = json.loads(redis.Redis.from_url(redis_server.url).get("test:tokens:default"))
    assert (record["accessToken"], record["refreshToken"]) == (NEW_ACCESS, NEW_REFRESH)
    assert len(record["lineage"]) == 2  # the original login, then its refresh
    files = sorted(json.loads(m.token_file.read_text())["refreshToken"] for m in machines)
    assert files == sorted([REFRESH, NEW_REFRESH])  # only the refreshing machine rewrote its own copy


def test_a_lock_left_by_a_crashed_replica_expires(settings, tmp_path, fake_upstream, redis_server):
    machine = Machine(settings, tmp_path, "one", redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    client.set("test:lock:refresh:default", "crashed-holder", px=1500)
    left = client.pttl("test:lock:refresh:default") / 1000
    started = time.monotonic()
    assert machine.tokens.current().access_token == NEW_ACCESS
    assert time.monotonic() - started >= left - 0.05  # it waited for the expiry, then refreshed
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert client.get("test:lock:refresh:default") is None  # and released its own lock


def test_outage_keeps_serving_locally_then_shares_again(settings, tmp_path, fake_upstream, redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="ki2api")
    one, two = (RedisState(redis_server.url, "test", str(tmp_path / n)) for n in ("one", "two"))
    one.add_counts({"a": {"requests": 2}})
    assert one.counts()["a"] == {"requests": 2}
    redis_server.stop()
    one.update("a", "cooldown", {"until": time.time() + 600, "kind": "throttled", "failures": 1, "at": time.time()})
    one.add_counts({"a": {"requests": 3, "errors": 1}})
    assert one.states()["a"]["cooldown"]["kind"] == "throttled"  # the local view still works
    assert one.counts()["a"] == {"requests": 5, "errors": 1}
    status = one.status()
    assert status["connected"] is False and status["down_since"] and "Connection" in status["error"]
    assert "unreachable" in caplog.text and redis_server.url.split("/0")[0] in caplog.text
    assert "a" not in two.states()  # another machine cannot know yet
    redis_server.start()  # empty again: no persistence
    for state in (one, two):  # each finds out in the background, within a probe interval
        wait_for(lambda: state.status()["connected"], "the probe to find Redis back")
    assert two.states()["a"]["cooldown"]["kind"] == "throttled"  # pushed on return
    assert two.counts()["a"] == {"requests": 3, "errors": 1}  # held counters sent; older ones died with Redis
    assert "reachable again" in caplog.text


def test_a_token_refreshed_during_an_outage_is_published_when_redis_returns(settings, tmp_path, fake_upstream,
                                                                         redis_server):
    one = Machine(settings, tmp_path, "one", redis_server.url)
    one.token_file.chmod(0o400)  # so the refreshed token lives only in the state dir and Redis
    one.shared.on_return(one.tokens.publish)
    redis_server.stop()
    assert one.tokens.current().access_token == NEW_ACCESS  # refreshed with only the local lock
    redis_server.start()
    wait_for(lambda: one.shared.status()["connected"], "the probe to find Redis back")
    two = Machine(settings, tmp_path, "two", redis_server.url)  # its copy has the spent refresh token
    assert two.tokens.current().access_token == NEW_ACCESS
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_a_spent_refresh_token_is_retaken_from_the_share(settings, tmp_path, fake_upstream, redis_server):
    """Replica two refreshed; replica one did not see that (Redis had lost the record) and its refresh with the
    spent token is refused. If the new token has reached Redis meanwhile, one uses it instead of declaring
    the login dead."""
    client = redis.Redis.from_url(redis_server.url)
    lost: dict[str, bytes] = {}
    session = OnRefusal(lambda: client.set("test:tokens:default", lost.pop("record")))  # back while one refreshes
    two = Machine(settings, tmp_path, "two", redis_server.url)
    one = Machine(settings, tmp_path, "one", redis_server.url, session=session)
    assert two.tokens.current().access_token == NEW_ACCESS
    lost["record"] = client.get("test:tokens:default")
    client.delete("test:tokens:default")
    credential = one.tokens.current()
    assert session.refusals == 1 and not lost  # one's spent token was refused, and the record came back then
    assert credential.access_token == "aoaAAAAAfake-access-2"  # refreshed with the retaken token
    assert fake_upstream.stats()["refresh_calls"] == 3
    assert one.tokens.status()["needs_login"] is False


def test_file_state_claims_and_counters_are_shared_by_processes_on_one_machine(tmp_path):
    first, second = FileState(tmp_path), FileState(tmp_path)
    assert first.claim("usage:a", 60) is True
    assert second.claim("usage:a", 60) is False
    assert second.claim("usage:b", 60) is True
    first.add_counts({"a": {"requests": 2}})
    second.add_counts({"a": {"requests": 1, "errors": 1}})
    assert first.counts() == {"a": {"requests": 3, "errors": 1}}
    second.update("a", "disabled", {"why": "x", "at": 1.0, "fingerprint": None})
    assert first.states()["a"]["disabled"]["why"] == "x"
    second.update("a", "disabled", None)
    assert "disabled" not in first.states()["a"]


@pytest.mark.parametrize("url", ["redis://user:hunter2@127.0.0.1:1/0"])
def test_status_never_shows_the_redis_password(url, tmp_path):
    status = RedisState(url, "test", str(tmp_path)).status()
    assert status["url"] == "redis://127.0.0.1:1/0" and status["connected"] is False
    assert "hunter2" not in json.dumps(status)


def test_a_disabled_account_finds_a_newer_login_shared_through_redis(settings, tmp_path, fake_upstream,
                                                                     redis_server):
    """Replica one disabled the account while Redis was away (its refresh token had been spent by replica two);
    once two's token is in Redis, one finds it and serves again instead of staying disabled."""
    pools = []
    for name in ("one", "two"):
        token_file = write_token_file(tmp_path / name / "kiro-auth-token.json", expires_in=-60)
        pools.append(build_pool(replace(settings, token_file=str(token_file), state_dir=str(tmp_path / name / "s"),
                                        redis_url=redis_server.url, redis_prefix="test"), requests.Session()))
    one, two = pools
    assert one.accounts[0].tokens.fingerprint() == fingerprint(REFRESH)  # one holds the original login
    assert two.accounts[0].tokens.current().access_token == NEW_ACCESS  # two refreshes it (spending REFRESH)
    one.write("default", "disabled", {"why": "Kiro's refresh token is no longer valid", "at": time.time(),
                                      "fingerprint": fingerprint(REFRESH)})
    lease = one.acquire()  # looks for a newer shared token before calling the account disabled
    assert lease.account.tokens.current().access_token == NEW_ACCESS
    lease.release()
    assert fake_upstream.stats()["refresh_calls"] == 1


# -- Redis is the truth while it is reachable --------------------------------------------------------------------

def quota_rest(seconds: float = 600) -> dict[str, Any]:
    now = time.time()
    return {"until": now + seconds, "kind": "quota", "message": "used up", "failures": 1, "at": now}


@pytest.mark.parametrize("field, value", [("cooldown", quota_rest()),
                                          ("disabled", {"why": "dead", "at": 1.0, "fingerprint": "f"})])
def test_a_field_one_replica_clears_is_cleared_for_every_replica(tmp_path, redis_server, field, value):
    one, two = (RedisState(redis_server.url, "test", str(tmp_path / n)) for n in ("one", "two"))
    one.update("a", field, value)
    assert two.states()["a"][field] == value
    two.update("a", field, None)
    assert field not in one.states().get("a", {})  # not kept alive by one's own local copy


def test_a_quota_rest_ended_by_another_replicas_usage_poll_ends_everywhere(settings, tmp_path, fake_upstream,
                                                                           redis_server):
    """Replica one rests the account on a 402 until the reset date; replica two's usage poll sees credits
    again and ends the rest; replica one must serve with the account again."""
    from ki2api.errors import RateLimited

    pools = []
    for name in ("one", "two"):
        token_file = write_token_file(tmp_path / name / "kiro-auth-token.json")
        pools.append(build_pool(replace(settings, token_file=str(token_file), state_dir=str(tmp_path / name / "s"),
                                        redis_url=redis_server.url, redis_prefix="test"), requests.Session()))
    one, two = pools
    one.cool(one.accounts[0], "quota", RateLimited("You have reached the limit."), None)
    with pytest.raises(RateLimited):
        one.acquire()
    two.record_usage(two.accounts[0], {"limit": 50, "used": 10, "remaining": 40, "fetched_at": time.time()})
    assert "cooldown" not in one.states(fresh=True).get("default", {})
    one.acquire().release()


# -- Redis going away: the local view, then only this process's changes go back ------------------------------

def test_an_entry_cleared_elsewhere_is_not_resurrected_when_redis_returns(tmp_path, redis_proxy, redis_server):
    one = RedisState(redis_proxy.url, "test", str(tmp_path / "one"))  # behind the switch
    two = RedisState(redis_server.url, "test", str(tmp_path / "two"))
    one.update("a", "cooldown", quota_rest())
    two.update("a", "cooldown", None)  # cleared while one could still see Redis ...
    redis_proxy.set_mode("refuse")
    assert one.states()["a"]["cooldown"]["kind"] == "quota"  # ... but one's local view still has it
    assert one.status()["connected"] is False
    redis_proxy.set_mode("forward")
    assert one.link.probe_once() is True and one.status()["connected"] is True
    assert "cooldown" not in two.states().get("a", {}) and "cooldown" not in one.states().get("a", {})


def test_a_clear_made_during_the_outage_reaches_redis_on_return(tmp_path, redis_proxy, redis_server):
    one = RedisState(redis_proxy.url, "test", str(tmp_path / "one"))
    two = RedisState(redis_server.url, "test", str(tmp_path / "two"))
    one.update("a", "cooldown", quota_rest())
    one.update("b", "cooldown", quota_rest())
    redis_proxy.set_mode("refuse")
    one.update("a", "cooldown", None)  # one's usage poll saw credits again while Redis was away
    assert two.states()["a"]["cooldown"]["kind"] == "quota"  # nobody else can know yet
    redis_proxy.set_mode("forward")
    assert one.link.probe_once() is True
    assert "cooldown" not in two.states().get("a", {})
    assert two.states()["b"]["cooldown"]["kind"] == "quota"  # untouched during the outage: left as Redis has it


def test_a_later_write_by_another_replica_wins_over_an_outage_change(tmp_path, redis_proxy, redis_server):
    one = RedisState(redis_proxy.url, "test", str(tmp_path / "one"))
    two = RedisState(redis_server.url, "test", str(tmp_path / "two"))
    redis_proxy.set_mode("refuse")
    one.update("a", "cooldown", None)
    later = {**quota_rest(), "at": time.time() + 1}
    two.update("a", "cooldown", later)  # two rests the account after one's clear
    redis_proxy.set_mode("forward")
    assert one.link.probe_once() is True
    assert one.states()["a"]["cooldown"] == later


def test_a_blackholed_redis_costs_the_request_path_one_timeout_only(tmp_path, monkeypatch):
    """A Redis that accepts connections and never answers: once the first call has timed out, every call
    goes straight to the local view; only the background probe keeps asking Redis."""
    from ki2api.accounts import redis_link
    from tests.helpers.redis_proxy import RedisProxy

    monkeypatch.setattr(redis_link, "SOCKET_TIMEOUT", 0.5)
    monkeypatch.setattr(redis_link, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setattr(redis_link, "RETRY_DOWN_AFTER", 0.2)
    blackhole = RedisProxy(mode="blackhole")
    try:
        state = RedisState(blackhole.url, "test", str(tmp_path / "one"))
        store = TokenStore(str(write_token_file(tmp_path / "kiro-auth-token.json")), str(tmp_path / "one"), None,
                           None, share=state)
        pool, asked = state.link.client.connection_pool, []  # the thread of every command sent to Redis
        get_connection = pool.get_connection
        monkeypatch.setattr(pool, "get_connection", lambda *args, **kwargs: asked.append(
            threading.current_thread().name) or get_connection(*args, **kwargs))
        assert state.states() == {}  # the call that finds out: it waits for the socket timeout
        assert asked == ["MainThread"] and blackhole.commands  # it did reach the blackhole
        asked.clear()
        calls = [state.states, lambda: state.update("a", "last_error", {"at": time.time()}),
                 lambda: state.add_counts({"a": {"requests": 1}}), state.counts, lambda: state.claim("usage:a", 60),
                 state.status, store.load, lambda: store.lock(5).__enter__()]
        waited = made = 0
        deadline = time.monotonic() + 30
        while asked.count("ki2api-redis-probe") < 3:  # three probe attempts: three retry intervals at least
            assert time.monotonic() < deadline, "the background probe never asked Redis"
            for call in calls:
                started = time.monotonic()
                call()
                waited += time.monotonic() - started >= redis_link.SOCKET_TIMEOUT
                made += 1
            time.sleep(0.01)
        assert waited == 0, f"{waited} of {made} calls waited for Redis"
        assert set(asked) == {"ki2api-redis-probe"}  # nothing on the request path asked Redis again
        assert state.states()["a"]["last_error"] and state.status()["connected"] is False  # the local view
    finally:
        blackhole.close()
