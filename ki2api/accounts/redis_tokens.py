"""The token records and refresh locks of the shared state in Redis: each account refreshed once over every replica.

Keys, under KI2API_REDIS_PREFIX: `P:tokens:<account>` (JSON token record with lineage, and `lock`: the id in the
token file lock it was refreshed under), `P:lock:refresh:<account>` (redis-py lock with expiry). A record in
Redis is replaced by a refresh, or by a record that descends from it (`publish_tokens`, after an outage).

While Redis is unreachable a replica refreshes under the token file's own lock, and only if the record last
seen in Redis was written under that same lock: two replicas holding copies of a login never both spend its
rotating refresh token. redis_state.RedisState is this class plus the rest of the shared state.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator

import redis

from .file_state import FileState
from .protocols import NoSharedLock
from .redis_link import RedisDown, RedisLink

log = logging.getLogger(__name__)

LOCK_POLL = 0.05
# Replace the shared token record only with one that descends from it (or when there is none).
_PUBLISH = """
local current = redis.call('GET', KEYS[1])
if current then
  local lineage = cjson.decode(current)['lineage']
  local tip = lineage and lineage[#lineage]
  local ok = false
  for i = 2, #ARGV do if ARGV[i] == tip then ok = true end end
  if not ok or ARGV[#ARGV] == tip then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisTokens:
    """Token records and refresh locks in Redis, written through to the FileState `local`."""

    def __init__(self, local: FileState, link: RedisLink, prefix: str) -> None:
        self.local = local
        self.link = link
        self.prefix = prefix
        self._publish = link.client.register_script(_PUBLISH)
        # account -> the id of the token file lock this process refreshes under, and the raw token record last
        # seen in Redis: during an outage, a replica refreshes only if that record was written under its own lock
        self._lock_ids: dict[str, str] = {}
        self._seen: dict[str, Any] = {}

    def read_tokens(self, name: str, key: str) -> list[dict[str, Any]]:
        """The local token record (if any) and the one in Redis (if reachable and present)."""
        records = self.local.read_tokens(name, key)
        with contextlib.suppress(RedisDown):
            raw = self.link.call(lambda r: r.get(self._key("tokens", name)))
            self._seen[name] = raw
            record = json_object(raw)
            if record:
                records.append(record)
        return records

    def write_tokens(self, name: str, key: str, record: dict[str, Any], local: bool) -> str:
        """Store a refreshed record in Redis, and locally when no token file holds it; return where."""
        where = self.local.write_tokens(name, key, record, local)
        if name in self._lock_ids:  # which token file lock it was refreshed under (see refresh_lock)
            record = {**record, "lock": self._lock_ids[name]}
        try:
            self.link.call(lambda r: r.set(self._key("tokens", name), json.dumps(record)))
        except RedisDown:
            log.warning("the refreshed token of %s is kept locally only until Redis returns", name)
            return where
        return ", ".join(filter(None, [where, f"{self.link.url} {self._key('tokens', name)}"]))

    def publish_tokens(self, name: str, key: str, record: dict[str, Any]) -> None:
        """Put our record in Redis if it descends from the one there (repairs Redis after an outage)."""
        lineage = [str(f) for f in record.get("lineage", [])]
        if name in self._lock_ids:
            record = {**record, "lock": self._lock_ids[name]}
        with contextlib.suppress(RedisDown):
            if self.link.call(lambda r: self._publish(keys=[self._key("tokens", name)],
                                                      args=[json.dumps(record), *lineage])):
                log.info("published the newer token of %s to Redis", name)

    def remember_tokens(self, key: str, record: dict[str, Any],
                        supersedes: Callable[[dict[str, Any]], bool]) -> None:
        """Keep the token file's login in the local state directory (Redis gets it when a refresh publishes)."""
        self.local.remember_tokens(key, record, supersedes)

    def tokens_stamp(self, name: str, key: str) -> Hashable:
        """The local record's stamp and the Redis record as it is now (one GET), so that every replica uses a
        token another one shared the moment it is in Redis; "down" while Redis is unreachable, so its return
        is a change too."""
        try:
            shared: Any = self.link.call(lambda r: r.get(self._key("tokens", name)))
            self._seen[name] = shared
        except RedisDown:
            shared = "down"
        return self.local.tokens_stamp(name, key), shared

    @contextlib.contextmanager
    def refresh_lock(self, name: str, key: str, timeout: float, beside: Path | None = None
                     ) -> Iterator[Path | None]:
        """The local flock (workers of this machine queue there), then the Redis lock (replicas queue there).

        The Redis lock expires after `timeout`, so a replica that dies holding it blocks the others no longer.
        While Redis is unreachable, the token file's own lock (`beside`) still serialises the replicas that
        share that file: the refresh goes ahead under it, unless the token record last seen in Redis was
        written under another token file's lock (another replica holds its own copy of the login). Otherwise
        NoSharedLock: refusing beats spending a rotating refresh token twice.
        """
        started = time.monotonic()
        with self.local.refresh_lock(name, key, timeout, beside) as held_file:
            lock = self.link.client.lock(self._key("lock", "refresh", name), timeout=timeout, sleep=LOCK_POLL,
                                         thread_local=False)
            remaining = max(0.1, timeout - (time.monotonic() - started))
            try:
                held = self.link.call(lambda r: lock.acquire(blocking_timeout=remaining))
            except RedisDown:
                if beside is None or held_file != beside:
                    raise NoSharedLock(f"Redis at {self.link.url} is unreachable and {name}'s credential is not "
                                       "in a token file whose lock the replicas share") from None
                writer = (json_object(self._seen.get(name)) or {}).get("lock")
                if writer and writer != lock_id(beside):
                    raise NoSharedLock(f"Redis at {self.link.url} is unreachable and another replica refreshes "
                                       f"{name} with its own copy of the token file") from None
                held = None  # the token file's lock serialises the replicas sharing it until Redis returns
            if held is False:
                raise TimeoutError(f"no Redis refresh lock for {name} within {timeout:g} s")
            if beside is not None and held_file == beside:
                self._lock_ids[name] = lock_id(beside)
            try:
                yield held_file
            finally:
                if held:
                    with contextlib.suppress(RedisDown, redis.exceptions.LockError):
                        self.link.call(lambda r: lock.release())

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


def lock_id(lock: Path) -> str:
    """The id written in a token file's lock file (created by the first process holding it): the same for every
    replica that shares the file, another for a copy. Call with the lock held."""
    with contextlib.suppress(OSError):
        text = lock.read_text(encoding="ascii", errors="replace").strip()
        if len(text) == 32:
            return text
        fresh = uuid.uuid4().hex
        lock.write_text(fresh, encoding="ascii")
        return fresh
    return ""


def json_object(raw: Any) -> dict[str, Any] | None:
    """The JSON object a Redis value holds; None if it is missing, not JSON, or not an object."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
