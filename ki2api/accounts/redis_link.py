"""The connection to Redis, and whether Redis is reachable: calls fail at once while it is known to be down.

Finding out that Redis is back is left to a background probe (a greenlet under gevent), so that a Redis
that stops answering (a blackholed host, not a refused connection) costs the request path its socket
timeout once, when the outage begins, and never again while it lasts.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

RETRY_DOWN_AFTER = 2.0  # seconds between the probe's attempts while Redis is unreachable
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
T = TypeVar("T")


class RedisDown(Exception):
    """Redis could not be used just now; the caller falls back to the local view."""


def redacted(url: str) -> str:
    """The Redis URL without user or password, for logs and /health."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


class RedisLink:
    """One redis-py client plus whether Redis is reachable; built in the app factory (after gevent patched)."""

    def __init__(self, url: str, on_return: Callable[[], None]) -> None:
        self.url = redacted(url)
        self.client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
                                           retry=Retry(NoBackoff(), 1), health_check_interval=0)
        self.up: bool | None = None
        self.down_since: float | None = None
        self.error: str | None = None
        self.resyncing = False
        self._on_return = on_return
        self._probe_lock = threading.Lock()
        self._probing = False

    @property
    def connected(self) -> bool:
        """Redis answers, and what this process did while it was away has been sent back."""
        return self.up is True and not self.resyncing

    def call(self, operation: Callable[[redis.Redis], T]) -> T:
        """Run `operation(client)`; RedisDown if Redis is unreachable: now, or known to be since the last failure."""
        if self.up is False:
            raise RedisDown(self.error)
        try:
            result = operation(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # includes a refused password
            self._down(exc)
            raise RedisDown(self.error) from None
        except redis.RedisError as exc:  # Redis answered, but refused this one operation
            log.warning("Redis at %s refused an operation: %s", self.url, str(exc)[:200])
            raise RedisDown(str(exc)[:200]) from None
        if self.up is None:
            self.up = True
        return result

    def _down(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if self.up is not False:
            self.up, self.down_since = False, time.time()
            log.warning("Redis at %s is unreachable (%s); serving from this machine's local view in the state "
                        "directory until it returns", self.url, self.error)
        with self._probe_lock:
            if self._probing:
                return
            self._probing = True
        threading.Thread(target=_probe, args=(weakref.ref(self),), name="ki2api-redis-probe", daemon=True).start()

    def probe_once(self) -> bool:
        """One PING by the probe; on an answer, mark Redis up and resync. True when the probe may stop."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return False
        with self._probe_lock:
            self._probing = False
        self._back()
        return True

    def _back(self) -> None:
        """Redis answers again: let calls through (the resync's own included), then resync."""
        log.warning("Redis at %s is reachable again after %.0f s; shared state resumes", self.url,
                    time.time() - (self.down_since or time.time()))
        self.resyncing, self.up = True, True
        self.down_since, self.error = None, None
        try:
            self._on_return()
        finally:
            self.resyncing = False


def _probe(ref: "weakref.ref[RedisLink]") -> None:
    """Every RETRY_DOWN_AFTER seconds, PING until Redis answers; ends early if the link is gone."""
    while True:
        time.sleep(RETRY_DOWN_AFTER)
        link = ref()
        if link is None or link.probe_once():
            return
        del link  # hold no reference while asleep, so an abandoned link can be collected
