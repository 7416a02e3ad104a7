"""The connection to Redis, and whether Redis is reachable: calls fail fast while it is known to be down."""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

RETRY_DOWN_AFTER = 2.0  # seconds between attempts while Redis is unreachable
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0  # an unreachable Redis costs the request that finds out at most this long
T = TypeVar("T")


class RedisDown(Exception):
    """Redis could not be used just now; the caller falls back to the local view."""


def redacted(url: str) -> str:
    """The Redis URL without user or password, for logs and /health."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


class RedisLink:
    """One redis-py client plus whether Redis is reachable; calls fail fast while it is known to be down."""

    def __init__(self, url: str, on_return: Callable[[], None]) -> None:
        self.url = redacted(url)
        self.client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                                           retry=Retry(NoBackoff(), 1), health_check_interval=0)
        self.up: bool | None = None
        self.down_since: float | None = None
        self.error: str | None = None
        self._retry_at = 0.0
        self._on_return = on_return

    def call(self, operation: Callable[[redis.Redis], T], force: bool = False) -> T:
        """Run `operation(client)`; RedisDown if Redis is unreachable (now, or known to be a moment ago).

        `force` tries Redis even within the quiet interval after a failure: refreshes do, since a worker that
        refreshed from its local view just after Redis returned could spend a refresh token already rotated.
        """
        if self.up is False and not force and time.monotonic() < self._retry_at:
            raise RedisDown(self.error)
        try:
            result = operation(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # includes a refused password
            self._down(exc)
            raise RedisDown(self.error) from None
        except redis.RedisError as exc:  # Redis answered, but refused this one operation
            log.warning("Redis at %s refused an operation: %s", self.url, str(exc)[:200])
            raise RedisDown(str(exc)[:200]) from None
        if self.up is not True:
            self._back()
        return result

    def _down(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        self._retry_at = time.monotonic() + RETRY_DOWN_AFTER
        if self.up is not False:
            self.up, self.down_since = False, time.time()
            log.warning("Redis at %s is unreachable (%s); serving from this machine's local view in the state "
                        "directory until it returns", self.url, self.error)

    def _back(self) -> None:
        was_down, self.up = self.up is False, True  # set first: the callback's own calls find Redis up
        if not was_down:
            return
        log.warning("Redis at %s is reachable again after %.0f s; shared state resumes", self.url,
                    time.time() - (self.down_since or time.time()))
        self.down_since, self.error = None, None
        self._on_return()
