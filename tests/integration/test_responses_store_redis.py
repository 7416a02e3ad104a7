"""Stored responses in a real Redis: kept with an expiry, trimmed to the byte limit oldest first, 503 when away."""
import pytest

from ki2api.errors import UpstreamUnavailable
from ki2api.responses_store import RedisResponses

pytestmark = pytest.mark.integration


def record(text: str) -> dict:
    return {"response": {"output": [text]}, "input": [], "context": []}


def test_put_get_delete_with_expiry(redis_server):
    store = RedisResponses(redis_server.url, "t1", ttl=30, max_bytes=10_000)
    rid = "resp_" + "b" * 32
    assert store.put(rid, record("hello"))
    assert store.get(rid) == record("hello")
    assert 0 < store.client.pttl(f"t1:response:{rid}") <= 30_000
    assert store.delete(rid) is True
    assert store.get(rid) is None and store.delete(rid) is False
    assert store.client.zcard("t1:responses:index") == 0 and store.client.hlen("t1:responses:sizes") == 0


def test_the_oldest_go_first_once_the_total_passes_the_limit(redis_server):
    store = RedisResponses(redis_server.url, "t2", ttl=60, max_bytes=350)
    ids = [f"resp_{i:032d}" for i in range(4)]
    for rid in ids:
        assert store.put(rid, record("y" * 60))  # 112 bytes each: three fit in 350, four do not
    kept = [rid for rid in ids if store.get(rid) is not None]
    assert kept == ids[-3:]
    assert sum(int(v) for v in store.client.hvals("t2:responses:sizes")) <= 350


def test_redis_away_stores_nothing_and_a_lookup_is_a_503(redis_server):
    store = RedisResponses(redis_server.url, "t3", ttl=60, max_bytes=10_000)
    redis_server.stop()
    assert store.put("resp_" + "c" * 32, record("lost")) is False
    with pytest.raises(UpstreamUnavailable):
        store.get("resp_" + "c" * 32)
