"""Per-address limit on failed API-key attempts (AUTH_FAIL_LIMIT failures per AUTH_FAIL_WINDOW s).

On by default (20 per 300 s; AUTH_FAIL_LIMIT=0 turns it off). An address that sent that many requests with a wrong or
missing key within the window, to any path that checks the key (/v1, /metrics, /dashboard/data,
/debug/runtime), gets 429 for every request but those that need no key until its oldest failure leaves the
window, with the right key too (otherwise the limit would not slow a guesser down). Counted per worker
process. The address is the peer's, or behind TRUSTED_PROXIES reverse proxies the one they forwarded (ProxyFix).
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Callable

from flask import Flask, Response, request

from ..errors import RateLimited
from ..settings import Settings
from .auth import key_is_valid, presented_key

MAX_TRACKED = 10_000  # addresses remembered at once; the least recently failing are forgotten first
# Answered without a key, so a blocked address still gets them: health checks, the status page (which asks
# for the key) and its files, the API description. Everything else, unknown paths included, is refused.
PUBLIC_ENDPOINTS = frozenset({"health.health", "dashboard.page", "static", "meta.openapi"})


class FailedKeyLimiter:
    """Failure timestamps per client address, bounded in addresses and in entries per address."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None if it is not blocked."""
        failures = self._failures.get(address)
        if not failures:
            return None
        now = self.clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.limit:
            if not failures:
                del self._failures[address]
            return None
        return failures[0] + self.window - now

    def record(self, address: str) -> None:
        """Count one failed attempt from `address`."""
        failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
        failures.append(self.clock())
        self._failures[address] = failures
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)


def client_address() -> str:
    """The client's address as the app sees it (TRUSTED_PROXIES already applied by web/proxies.py)."""
    return request.remote_addr or ""


def needs_key(endpoint: str | None, metrics_public: bool) -> bool:
    """True unless the endpoint answers without a key (PUBLIC_ENDPOINTS, and /metrics with METRICS_PUBLIC)."""
    return endpoint not in PUBLIC_ENDPOINTS and not (metrics_public and endpoint == "metrics.metrics")


def init_failed_key_limit(app: Flask, settings: Settings) -> None:
    """Register the limiter's hooks when AUTH_FAIL_LIMIT > 0; with 0, register nothing."""
    if settings.auth_fail_limit <= 0:
        return
    limiter = FailedKeyLimiter(settings.auth_fail_limit, settings.auth_fail_window)

    @app.before_request
    def _refuse_blocked() -> None:
        if not needs_key(request.endpoint, settings.metrics_public):
            return
        wait = limiter.retry_after(client_address())
        if wait is not None:
            raise RateLimited("Too many requests with a wrong API key from your address; try again later",
                              code="too_many_failed_attempts", retry_after=max(1.0, wait))

    @app.after_request
    def _count_failure(response: Response) -> Response:
        # Every 401 of ki2api's own comes from a key check; one with the right key is Kiro refusing its token.
        if response.status_code == 401 and not key_is_valid(presented_key(request.headers), settings.api_keys):
            limiter.record(client_address())
        return response
