"""SharedState in Redis (REDIS_URL), so several replicas refresh each account once and share cooldowns.

While Redis is reachable it is the truth: account states are read from it alone, so a cooldown or flag
that any replica clears is cleared for all. Every write also goes to a FileState in KI2API_STATE_DIR: when
Redis is unreachable this replica serves from that local view (warning in the log and on /health), probes
Redis every few seconds in the background, and on its return pushes what this process changed meanwhile
(counters, account fields set or cleared, refreshed tokens), and nothing else, so the view is shared again.

The token records and refresh locks are RedisTokens' (redis_tokens.py, keys `P:tokens:<account>` and
`P:lock:refresh:<account>`); RedisState adds the rest. Its keys, under KI2API_REDIS_PREFIX (default "ki2api"):
`P:state:<field>` (hash account -> JSON), `P:count:<counter>` (hash account -> int), `P:claim:<job>` (SET NX PX),
`P:starts:<account>` (sorted set of request starts in the last minute, for `rpm`), `P:machine_id` (hash
account -> id, set with HSETNX so the first replica's id wins; mirrored in the local machine-ids.json).
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import defaultdict
from typing import Any, Callable

import redis

from .cooldown import iso
from .file_state import FileState
from .files import StoreError, read_json
from .identity import is_machine_id, new_machine_id
from .protocols import COUNTERS, FIELDS, AccountStates
from .redis_link import RedisDown, RedisLink
from .redis_tokens import RedisTokens, json_object

# A sliding window of request starts per account: drop the old ones, then add one if there is room.
_TAKE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class RedisState(RedisTokens):
    """SharedState in Redis, written through to a FileState that serves while Redis is away: the token records
    and refresh locks of RedisTokens, plus the account states, counters, claims and request windows."""

    backend = "redis"

    def __init__(self, url: str, prefix: str, state_dir: str) -> None:
        super().__init__(FileState(state_dir), RedisLink(url, self._resync), prefix)
        self._take = self.link.client.register_script(_TAKE)
        self._pending: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._last_counts: dict[str, dict[str, int]] = {}
        # (account, field) -> when this process set or cleared it while Redis was away: pushed on its return
        self._changed: dict[tuple[str, str], float] = {}
        self._returned: list[Callable[[], None]] = []

    def on_return(self, callback: Callable[[], None]) -> None:
        """Run `callback` whenever Redis becomes reachable again (the pool republishes its tokens)."""
        self._returned.append(callback)

    # -- account state -------------------------------------------------------------------------------------------

    def states(self) -> AccountStates:
        """The account states in Redis; this machine's local view only while Redis is unreachable."""
        try:
            tables = self.link.call(self._hgetall_all([self._key("state", f) for f in FIELDS]))
        except RedisDown:
            return self.local.states()
        shared: AccountStates = {}
        for field, table in zip(FIELDS, tables):
            for name, raw in table.items():
                value = json_object(raw)
                if value is not None:
                    shared.setdefault(name.decode(), {})[field] = value
        return shared

    def update(self, name: str, field: str, value: dict[str, Any] | None) -> None:
        """Set or clear one field, locally and in Redis; while Redis is away, remember that it changed here."""
        self.local.update(name, field, value)
        key = self._key("state", field)
        try:
            if value is None:
                self.link.call(lambda r: r.hdel(key, name))
            else:
                self.link.call(lambda r: r.hset(key, name, json.dumps(value)))
        except RedisDown:
            self._changed[(name, field)] = time.time()

    def machine_id(self, name: str) -> str:
        """The account's machine id in Redis (offering this machine's, or a new one, if Redis has none); the
        local one while Redis is away."""
        known = (read_ids(self.local) or {}).get(name)
        offer = known if is_machine_id(known) else new_machine_id()
        key = self._key("machine_id")

        def run(client: redis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.hsetnx(key, name, offer)
            pipe.hget(key, name)
            return pipe.execute()
        try:
            shared = self.link.call(run)[1]
        except RedisDown:
            return self.local.machine_id(name)
        value = shared.decode() if isinstance(shared, bytes) else str(shared)
        if value != known:
            with contextlib.suppress(OSError, TimeoutError, StoreError):  # the mirror is only a fallback
                self.local.keep_machine_id(name, value)
        return value

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

    def take(self, name: str, limit: int, window: float) -> float:
        """A request start within `limit` per `window` seconds over every replica (0.0), or the seconds to wait;
        this machine's own count while Redis is away."""
        now = time.time()
        try:
            wait = self.link.call(lambda r: self._take(keys=[self._key("starts", name)],
                                                       args=[repr(now), repr(window), limit, uuid.uuid4().hex]))
        except RedisDown:
            return self.local.take(name, limit, window)
        return max(0.0, float(wait))

    def status(self) -> dict[str, Any]:
        """Backend health for /health: connected, or since when not and why."""
        with contextlib.suppress(RedisDown):
            self.link.call(lambda r: r.ping())
        since = self.link.down_since
        return {"backend": self.backend, "url": self.link.url, "prefix": self.prefix,
                "connected": self.link.connected, "down_since": iso(since) if since else None,
                "error": self.link.error, "local_dir": str(self.local.dir)}

    # -- helpers -------------------------------------------------------------------------------------------------

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
        """Redis is back: send held counters, the fields this process set or cleared meanwhile, newer tokens."""
        self._flush_counts()
        pending, self._changed = list(self._changed.items()), {}
        local = self.local.states()
        while pending:
            (name, field), changed_at = pending[0]
            try:
                self._push(name, field, local.get(name, {}).get(field), changed_at)
            except RedisDown:  # gone again: the rest waits for the next return
                for change, at in pending:
                    self._changed.setdefault(change, at)
                return
            pending.pop(0)
        for callback in self._returned:
            callback()

    def _push(self, name: str, field: str, value: dict[str, Any] | None, changed_at: float) -> None:
        """Put the local value of a field changed during the outage into Redis (a clear as a delete), unless
        another replica wrote that field in Redis later."""
        key = self._key("state", field)
        current = json_object(self.link.call(lambda r: r.hget(key, name)))
        if current is not None and _written_at(field, current) > changed_at:
            return
        if value is None:
            self.link.call(lambda r: r.hdel(key, name))
        else:
            self.link.call(lambda r: r.hset(key, name, json.dumps(value)))


def read_ids(local: FileState) -> dict[str, Any] | None:
    """The local machine-ids.json, or None if it is missing or unreadable."""
    try:
        return read_json(local.ids_path)
    except StoreError:
        return None


def _written_at(field: str, value: dict[str, Any]) -> float:
    """When a field's value was written (epoch seconds): its `fetched_at` (usage) or `at` (the others)."""
    try:
        return float(value.get("fetched_at" if field == "usage" else "at", 0))
    except (TypeError, ValueError):
        return 0.0
