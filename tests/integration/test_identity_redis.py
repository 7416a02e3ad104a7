"""Identity and limits through a real redis-server: one machine id per account for every replica, kept while Redis
is away; a quarantine and an rpm window shared by replicas."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest
import requests

from ki2api.accounts.build import build_pool
from ki2api.accounts.identity import is_machine_id
from ki2api.accounts.redis_state import RedisState
from tests.helpers.credentials import write_token_file
from tests.helpers.together import all_at_once

pytestmark = pytest.mark.integration


def test_replicas_racing_create_one_machine_id_per_account(tmp_path, redis_server):
    replicas = [RedisState(redis_server.url, "test", str(tmp_path / f"r{i}")) for i in range(6)]
    ids = all_at_once(len(replicas), lambda i: replicas[i].machine_id("alice"))
    assert len(set(ids)) == 1 and is_machine_id(ids[0])
    assert replicas[0].machine_id("bob") not in (ids[0], None)
    restarted = RedisState(redis_server.url, "test", str(tmp_path / "new-machine"))
    assert restarted.machine_id("alice") == ids[0]  # a new replica, or a restart, finds it in Redis


def test_the_local_copy_serves_while_redis_is_away_and_a_new_id_is_offered_on_return(tmp_path, redis_proxy,
                                                                                   redis_server):
    one = RedisState(redis_proxy.url, "test", str(tmp_path / "one"))
    known = one.machine_id("alice")
    redis_proxy.set_mode("refuse")
    assert one.machine_id("alice") == known  # the local mirror of Redis' id
    fresh = one.machine_id("carol")  # created during the outage: this machine's own for now
    redis_proxy.set_mode("forward")
    assert one.link.probe_once() is True
    two = RedisState(redis_server.url, "test", str(tmp_path / "two"))
    assert one.machine_id("carol") == fresh and two.machine_id("carol") == fresh  # offered to Redis, kept


def test_a_quarantine_set_by_one_replica_holds_for_every_replica(tmp_path, redis_server):
    one, two = (RedisState(redis_server.url, "test", str(tmp_path / n)) for n in ("one", "two"))
    one.update("alice", "quarantine", {"at": time.time(), "until": None, "why": "suspended"})
    assert two.states()["alice"]["quarantine"]["why"] == "suspended"
    two.update("alice", "quarantine", None)  # a person cleared it through replica two
    assert "quarantine" not in one.states().get("alice", {})


def test_the_rpm_window_is_shared_by_replicas(tmp_path, redis_server):
    one, two = (RedisState(redis_server.url, "test", str(tmp_path / n)) for n in ("one", "two"))
    assert [one.take("alice", 3, 60.0), two.take("alice", 3, 60.0), one.take("alice", 3, 60.0)] == [0.0] * 3
    wait = two.take("alice", 3, 60.0)
    assert 55 < wait <= 60
    assert one.take("bob", 3, 60.0) == 0.0  # per account
    assert one.take("quick", 1, 0.2) == 0.0 and one.take("quick", 1, 0.2) > 0



def test_a_pool_reads_machine_ids_again_when_redis_returns(settings, tmp_path, redis_proxy, redis_server):
    token_file = write_token_file(tmp_path / "kiro-auth-token.json")
    mine = replace(settings, redis_url=redis_proxy.url, redis_prefix="test", token_file=str(token_file),
                   state_dir=str(tmp_path / "one"))
    redis_proxy.set_mode("refuse")
    pool = build_pool(mine, requests.Session())
    local = pool.accounts[0].tokens.machine_id()  # Redis away at start: this machine's own id
    other = RedisState(redis_server.url, "test", str(tmp_path / "two")).machine_id("default")  # another replica's
    assert other != local
    redis_proxy.set_mode("forward")
    assert pool.shared.link.probe_once() is True  # Redis is back: the pool republishes and forgets its ids
    assert pool.accounts[0].tokens.machine_id() == other
