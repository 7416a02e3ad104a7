"""RedisState against a real redis-server: tokens refreshed once across "machines", lock expiry, outages."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace

import pytest
import redis
import requests

from ki2api.accounts import build_pool
from ki2api.credential import fingerprint
from ki2api.redis_state import RedisState
from ki2api.shared_state import FileState
from ki2api.token_store import TokenStore
from ki2api.tokens import TokenManager
from tests.conftest import REFRESH, write_token_file
from tests.helpers.together import all_at_once

NEW_ACCESS, NEW_REFRESH = "aoaAAAAAfake-access-1", "aorAAAAAfake-refresh-1"


class Machine:
    """One replica's view: its own token file copy and state directory, the shared Redis."""

    def __init__(self, settings, tmp_path, name: str, url: str, expires_in: float = -60) -> None:
        self.dir = tmp_path / name
        self.token_file = write_token_file(self.dir / "kiro-auth-token.json", expires_in=expires_in)
        self.settings = replace(settings, token_file=str(self.token_file), state_dir=str(self.dir / "state"))
        self.shared = RedisState(url, "test", self.settings.state_dir)
        store = TokenStore(str(self.token_file), self.settings.state_dir, None, None, share=self.shared)
        self.tokens = TokenManager(self.settings, requests.Session(), store)


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
    deadline = time.monotonic() + 15
    while not one.status()["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert one.status()["connected"] is True
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
    deadline = time.monotonic() + 15
    while not one.shared.status()["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    two = Machine(settings, tmp_path, "two", redis_server.url)  # its copy has the spent refresh token
    assert two.tokens.current().access_token == NEW_ACCESS
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_a_spent_refresh_token_is_retaken_from_the_share(settings, tmp_path, fake_upstream, redis_server):
    """Replica two refreshed; replica one did not see that (Redis had lost the record) and its refresh with the
    spent token is refused. If the new token has reached Redis meanwhile, one uses it instead of declaring
    the login dead."""
    fake_upstream.reset(refresh_delay=1.5)  # a window in which the record can come back
    one, two = (Machine(settings, tmp_path, name, redis_server.url) for name in ("one", "two"))
    assert two.tokens.current().access_token == NEW_ACCESS
    client = redis.Redis.from_url(redis_server.url)
    record = client.get("test:tokens:default")
    client.delete("test:tokens:default")

    def restore_while_one_refreshes() -> None:
        deadline = time.monotonic() + 30
        while fake_upstream.stats()["refresh_calls"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.set("test:tokens:default", record)

    helper = threading.Thread(target=restore_while_one_refreshes)
    helper.start()
    credential = one.tokens.current()
    helper.join()
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
