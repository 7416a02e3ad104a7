"""Stored Responses API responses, for `previous_response_id` and GET/DELETE /v1/responses/{id}.

A record is `{"response": the response object, "input": this request's input items (with ids), "context":
the items of the conversation before them}`: one read gives the whole conversation to continue. Records
live where the account state lives, so every worker and replica sees them: files under
`KI2API_STATE_DIR/responses/` (one machine), or Redis when REDIS_URL is set (any replica). Both drop records
older than RESPONSES_TTL and the oldest records once the total passes RESPONSES_MAX_BYTES; a record larger than
that on its own is not kept.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from .accounts.files import StoreError, read_json
from .errors import UpstreamUnavailable

log = logging.getLogger(__name__)

_ID = re.compile(r"resp_[A-Za-z0-9]{1,64}")
# Drop expired records, then the oldest until both the byte total and the count fit (KEYS: index zset, sizes hash).
_TRIM = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
for _, id in ipairs(old) do
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id); redis.call('DEL', ARGV[1] .. id)
end
local total = 0
for _, size in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(size) end
while total > tonumber(ARGV[2]) do
  local id = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not id then break end
  total = total - tonumber(redis.call('HGET', KEYS[2], id) or '0')
  redis.call('ZREM', KEYS[1], id); redis.call('HDEL', KEYS[2], id); redis.call('DEL', ARGV[1] .. id)
end
return total
"""


class ResponseStore(Protocol):
    """Where stored responses are kept: put, get (None if unknown or expired), delete (False if unknown)."""

    def put(self, response_id: str, record: dict[str, Any]) -> bool: ...

    def get(self, response_id: str) -> dict[str, Any] | None: ...

    def delete(self, response_id: str) -> bool: ...


def valid_id(response_id: str) -> bool:
    """True for an id ki2api could have made (anything else is unknown without a look-up)."""
    return bool(_ID.fullmatch(response_id))


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (a reader in another worker never sees half a record); not fsynced: a
    response lost to a power cut is no harm."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class FileResponses:
    """Records as `<id>.json` files; the file's modification time is the record's age."""

    def __init__(self, state_dir: str, ttl: float, max_bytes: int) -> None:
        self.dir = Path(state_dir) / "responses"
        self.ttl, self.max_bytes = ttl, max_bytes

    def put(self, response_id: str, record: dict[str, Any]) -> bool:
        """Keep `record`; False (logged) if it is larger than the whole store may be."""
        data = _encode(record)
        if len(data) > self.max_bytes:
            log.warning("response %s not stored: %d bytes, above RESPONSES_MAX_BYTES", response_id, len(data))
            return False
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _replace(self.dir / f"{response_id}.json", data)
        self._trim()
        return True

    def get(self, response_id: str) -> dict[str, Any] | None:
        """The record, unless unknown or older than the TTL."""
        if not valid_id(response_id):
            return None
        path = self.dir / f"{response_id}.json"
        try:
            if time.time() - path.stat().st_mtime > self.ttl:
                path.unlink(missing_ok=True)
                return None
            return read_json(path)
        except FileNotFoundError:
            return None
        except StoreError as exc:
            log.warning("ignoring a stored response: %s", exc)
            return None

    def delete(self, response_id: str) -> bool:
        """Remove the record; False if there was none."""
        if not valid_id(response_id):
            return False
        try:
            (self.dir / f"{response_id}.json").unlink()
            return True
        except FileNotFoundError:
            return False

    def _trim(self) -> None:
        """Remove expired records, then the oldest while the total is above the limit."""
        entries, now = [], time.time()
        with os.scandir(self.dir) as found:
            for entry in found:
                if not entry.name.endswith(".json"):
                    continue
                try:
                    info = entry.stat()
                except FileNotFoundError:  # another worker trimmed it meanwhile
                    continue
                entries.append((info.st_mtime, info.st_size, entry.path))
        entries.sort()
        total = sum(size for _, size, _ in entries)
        for mtime, size, path in entries:
            if now - mtime <= self.ttl and total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


class RedisResponses:
    """Records as Redis strings with an expiry, plus an index (sorted by time) and their sizes for the byte limit."""

    def __init__(self, url: str, prefix: str, ttl: float, max_bytes: int) -> None:
        import redis  # only with REDIS_URL, like the account state

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0)
        self.key = f"{prefix}:response:"
        self.index, self.sizes = f"{prefix}:responses:index", f"{prefix}:responses:sizes"
        self.ttl, self.max_bytes = ttl, max_bytes
        self._trim = self.client.register_script(_TRIM)

    def _call(self, what: str, operation: Any) -> Any:
        try:
            return operation()
        except self._errors as exc:
            raise UpstreamUnavailable(f"The response store (Redis) is unreachable while {what}: {exc}",
                                      retry_after=5.0) from None

    def put(self, response_id: str, record: dict[str, Any]) -> bool:
        """Keep `record` with its expiry, then trim; False (logged) if too large or Redis is away."""
        data = _encode(record)
        if len(data) > self.max_bytes:
            log.warning("response %s not stored: %d bytes, above RESPONSES_MAX_BYTES", response_id, len(data))
            return False
        now = time.time()

        def write() -> None:
            pipe = self.client.pipeline()
            pipe.set(self.key + response_id, data, px=max(1, int(self.ttl * 1000)))
            pipe.zadd(self.index, {response_id: now})
            pipe.hset(self.sizes, response_id, len(data))
            pipe.execute()
            self._trim(keys=[self.index, self.sizes], args=[self.key, self.max_bytes, now - self.ttl])

        try:
            self._call("storing a response", write)
        except UpstreamUnavailable as exc:
            log.warning("response %s not stored: %s", response_id, exc.message)
            return False
        return True

    def get(self, response_id: str) -> dict[str, Any] | None:
        """The record, unless unknown or expired."""
        if not valid_id(response_id):
            return None
        data = self._call("reading a stored response", lambda: self.client.get(self.key + response_id))
        if data is None:
            return None
        record = json.loads(data)
        return record if isinstance(record, dict) else None

    def delete(self, response_id: str) -> bool:
        """Remove the record; False if there was none."""
        if not valid_id(response_id):
            return False

        def remove() -> int:
            pipe = self.client.pipeline()
            pipe.delete(self.key + response_id)
            pipe.zrem(self.index, response_id)
            pipe.hdel(self.sizes, response_id)
            return pipe.execute()[0]

        return bool(self._call("deleting a stored response", remove))


def build_store(state_dir: str, redis_url: str | None, redis_prefix: str, ttl: float, max_bytes: int
                ) -> ResponseStore:
    """Redis when REDIS_URL is set, else files in the state directory."""
    if redis_url:
        return RedisResponses(redis_url, redis_prefix, ttl, max_bytes)
    return FileResponses(state_dir, ttl, max_bytes)
