"""Stored responses in files: kept, read, deleted, dropped when older than the TTL or beyond the byte limit."""
import os
import time

from ki2api.responses_store import FileResponses, valid_id

RID = "resp_" + "a" * 32


def record(text: str = "x") -> dict:
    return {"response": {"id": RID, "output": [text]}, "input": [], "context": []}


def age(store: FileResponses, response_id: str, seconds: float) -> None:
    path = store.dir / f"{response_id}.json"
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_put_get_delete(tmp_path):
    store = FileResponses(str(tmp_path), ttl=60, max_bytes=10_000)
    assert store.put(RID, record("hello"))
    assert store.get(RID) == record("hello")
    assert store.delete(RID) is True
    assert store.get(RID) is None and store.delete(RID) is False


def test_older_than_the_ttl_is_gone(tmp_path):
    store = FileResponses(str(tmp_path), ttl=60, max_bytes=10_000)
    store.put(RID, record())
    age(store, RID, 61)
    assert store.get(RID) is None
    assert not (store.dir / f"{RID}.json").exists()


def test_the_oldest_go_first_once_the_total_passes_the_limit(tmp_path):
    store = FileResponses(str(tmp_path), ttl=3600, max_bytes=1100)
    ids = [f"resp_{i:032d}" for i in range(5)]
    for n, response_id in enumerate(ids):
        store.put(response_id, record("y" * 250))
        age(store, response_id, 100 - n)  # in the order they were stored
    kept = [i for i in ids if store.get(i) is not None]
    assert kept == ids[-3:]  # three records of 347 bytes fit in 1100, four do not
    assert sum(p.stat().st_size for p in store.dir.iterdir()) <= 1100


def test_a_record_larger_than_the_whole_store_is_not_kept(tmp_path):
    store = FileResponses(str(tmp_path), ttl=3600, max_bytes=1024)
    assert store.put(RID, record("z" * 2000)) is False
    assert store.get(RID) is None


def test_only_ids_ki2api_makes_are_looked_up(tmp_path):
    store = FileResponses(str(tmp_path), ttl=60, max_bytes=10_000)
    for bad in ("../../etc/passwd", "resp_", "resp_a/b", "msg_123", "resp_" + "a" * 65):
        assert not valid_id(bad)
        assert store.get(bad) is None and store.delete(bad) is False
