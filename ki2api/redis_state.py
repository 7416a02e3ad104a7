"""SharedState in Redis (REDIS_URL), so several replicas refresh each account once and share cooldowns.

Every write also goes to a FileState in KI2API_STATE_DIR: when Redis is unreachable this replica keeps
serving from that local view (warning in the log and on /health), retries Redis every few seconds, and on
its return pushes what it did meanwhile (counters, cooldowns, refreshed tokens) so the view is shared again.

Keys, under KI2API_REDIS_PREFIX (default "ki2api"): `P:tokens:<account>` (JSON token record with lineage),
`P:lock:refresh:<account>` (redis-py lock with expiry), `P:state:<field>` (hash account -> JSON),
`P:count:<counter>` (hash account -> int), `P:claim:<job>` (SET NX PX).
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import defaultdict
from typing import Any, Callable, Iterator

import redis

from .jsonfile import Stamp
from .redis_link import RedisDown, RedisLink
from .cooldown import iso
from .shared_state import COUNTERS, FIELDS, AccountStates, FileState

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


class RedisState:
    """SharedState in Redis, written through to a FileState that serves while Redis is away."""

    backend = "redis"

    def __init__(self, url: str, prefix: str, state_dir: str) -> None:
        self.local = FileState(state_dir)
        self.prefix = prefix
        self.link = RedisLink(url, self._resync)
        self._publish = self.link.client.register_script(_PUBLISH)
        self._pending: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._last_counts: dict[str, dict[str, int]] = {}
        self._returned: list[Callable[[], None]] = []

    def on_return(self, callback: Callable[[], None]) -> None:
        """Run `callback` whenever Redis becomes reachable again (the pool republishes its tokens)."""
        self._returned.append(callback)

    # -- tokens --------------------------------------------------------------------------------------------------

    def read_tokens(self, name: str, key: str) -> list[dict[str, Any]]:
        """The local token record (if any) and the one in Redis (if reachable and present; always asked)."""
        records = self.local.read_tokens(name, key)
        with contextlib.suppress(RedisDown):
            raw = self.link.call(lambda r: r.get(self._key("tokens", name)), force=True)
            record = _loads(raw)
            if record:
                records.append(record)
        return records

    def write_tokens(self, name: str, key: str, record: dict[str, Any], local: bool) -> str:
        """Store a refreshed record in Redis, and locally when no token file holds it; return where."""
        where = self.local.write_tokens(name, key, record, local)
        try:
            self.link.call(lambda r: r.set(self._key("tokens", name), json.dumps(record)))
        except RedisDown:
            log.warning("the refreshed token of %s is kept locally only until Redis returns", name)
            return where
        return ", ".join(filter(None, [where, f"{self.link.url} {self._key('tokens', name)}"]))

    def publish_tokens(self, name: str, key: str, record: dict[str, Any]) -> None:
        """Put our record in Redis if it descends from the one there (repairs Redis after an outage)."""
        lineage = [str(f) for f in record.get("lineage", [])]
        with contextlib.suppress(RedisDown):
            if self.link.call(lambda r: self._publish(keys=[self._key("tokens", name)],
                                                      args=[json.dumps(record), *lineage])):
                log.info("published the newer token of %s to Redis", name)

    def tokens_stamp(self, key: str) -> Stamp:
        """Stamp of the local record; Redis changes are read under the refresh lock instead."""
        return self.local.tokens_stamp(key)

    @contextlib.contextmanager
    def refresh_lock(self, name: str, key: str, timeout: float) -> Iterator[None]:
        """The local flock (workers of this machine queue there), then the Redis lock (replicas queue there).

        The Redis lock expires after `timeout`, so a replica that dies holding it blocks the others no longer.
        """
        started = time.monotonic()
        with self.local.refresh_lock(name, key, timeout):
            lock = self.link.client.lock(self._key("lock", "refresh", name), timeout=timeout, sleep=LOCK_POLL,
                                         thread_local=False)
            remaining = max(0.1, timeout - (time.monotonic() - started))
            try:
                held = self.link.call(lambda r: lock.acquire(blocking_timeout=remaining), force=True)
            except RedisDown:
                held = None  # only this machine is coordinated until Redis returns
            if held is False:
                raise TimeoutError(f"no Redis refresh lock for {name} within {timeout:g} s")
            try:
                yield
            finally:
                if held:
                    with contextlib.suppress(RedisDown, redis.exceptions.LockError):
                        self.link.call(lambda r: lock.release())

    # -- account state -------------------------------------------------------------------------------------------

    def states(self) -> AccountStates:
        """Redis's account states merged with the local ones (the later cooldown, the newer usage)."""
        merged = self.local.states()
        try:
            shared = self.link.call(self._hgetall_all([self._key("state", f) for f in FIELDS]))
        except RedisDown:
            return merged
        for field, table in zip(FIELDS, shared):
            for name, raw in table.items():
                value = _loads(raw)
                if value is not None:
                    fields = merged.setdefault(name.decode(), {})
                    fields[field] = _later(field, fields.get(field), value)
        return merged

    def update(self, name: str, field: str, value: dict[str, Any] | None) -> None:
        """Set or clear one field, locally and in Redis."""
        self.local.update(name, field, value)
        key = self._key("state", field)
        with contextlib.suppress(RedisDown):
            if value is None:
                self.link.call(lambda r: r.hdel(key, name))
            else:
                self.link.call(lambda r: r.hset(key, name, json.dumps(value)))

    def add_counts(self, deltas: dict[str, dict[str, int]]) -> None:
        """Add counter increments in Redis; while it is away, hold them until it returns."""
        for name, counters in deltas.items():
            for counter, delta in counters.items():
                self._pending[name][counter] += delta
        self._flush_counts()

    def counts(self) -> dict[str, dict[str, int]]:
        """Counters over every replica (the last known totals while Redis is away) plus ours not yet sent."""
        self._flush_counts()
        with contextlib.suppress(RedisDown):
            tables = self.link.call(self._hgetall_all([self._key("count", c) for c in COUNTERS]))
            self._last_counts = {}
            for counter, table in zip(COUNTERS, tables):
                for name, value in table.items():
                    self._last_counts.setdefault(name.decode(), {})[counter] = int(value)
        result = {name: dict(c) for name, c in self._last_counts.items()}
        for name, counters in self._pending.items():
            for counter, delta in counters.items():
                result.setdefault(name, {})[counter] = result.get(name, {}).get(counter, 0) + delta
        return result

    def claim(self, name: str, ttl: float) -> bool:
        """True for the one replica per `ttl` seconds that may do job `name`."""
        try:
            return bool(self.link.call(lambda r: r.set(self._key("claim", name), "1", nx=True, px=int(ttl * 1000))))
        except RedisDown:
            return self.local.claim(name, ttl)

    def status(self) -> dict[str, Any]:
        """Backend health for /health: connected, or since when not and why."""
        with contextlib.suppress(RedisDown):
            self.link.call(lambda r: r.ping())
        since = self.link.down_since
        return {"backend": self.backend, "url": self.link.url, "prefix": self.prefix,
                "connected": bool(self.link.up), "down_since": iso(since) if since else None,
                "error": self.link.error, "local_dir": str(self.local.dir)}

    # -- helpers -------------------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @staticmethod
    def _hgetall_all(keys: list[str]) -> Callable[[redis.Redis], list[dict[bytes, bytes]]]:
        def run(client: redis.Redis) -> list[dict[bytes, bytes]]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return pipe.execute()
        return run  # type: ignore[return-value]

    def _flush_counts(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))

        def send(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for name, counters in pending.items():
                for counter, delta in counters.items():
                    pipe.hincrby(self._key("count", counter), name, delta)
            pipe.execute()
        try:
            self.link.call(send)
        except RedisDown:
            for name, counters in pending.items():  # keep them for when Redis returns
                for counter, delta in counters.items():
                    self._pending[name][counter] += delta

    def _resync(self) -> None:
        """Redis is back: send held counters, unexpired local cooldowns and flags, then newer tokens."""
        self._flush_counts()
        now = time.time()
        for name, fields in self.local.states().items():
            for field, value in fields.items():
                if field == "cooldown" and float(value.get("until", 0)) <= now:
                    continue
                with contextlib.suppress(RedisDown):
                    key = self._key("state", field)
                    current = _loads(self.link.call(lambda r: r.hget(key, name)))
                    if _later(field, current, value) is value and current != value:
                        self.link.call(lambda r: r.hset(key, name, json.dumps(value)))
        for callback in self._returned:
            callback()


def _loads(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _later(field: str, mine: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    """Of two values of one field, the one to believe: the longer cooldown, the fresher usage, else theirs."""
    if mine is None:
        return theirs
    if field == "cooldown":
        return mine if float(mine.get("until", 0)) > float(theirs.get("until", 0)) else theirs
    stamp = "fetched_at" if field == "usage" else "at"
    return mine if float(mine.get(stamp, 0)) > float(theirs.get(stamp, 0)) else theirs
