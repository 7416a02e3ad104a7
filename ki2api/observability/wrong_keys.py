"""Requests refused for a wrong or missing API key, logged as a summary instead of one line each.

A guesser (or a client with an old key) can send thousands of such requests; one log line each would bury
everything else. The first one from an address in a period gets its usual request line (and a place in the
status page's lists); the rest of the period are summed up in one line, written when the next one arrives
after the period, so the log shows at most one line per address and period plus one summary per period and
worker. Metrics still count every request.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable

log = logging.getLogger("ki2api.auth")
PERIOD = 60.0  # seconds summed up in one line
MAX_ADDRESSES = 10_000  # addresses told apart in one period; beyond, they are counted together
OTHERS = "(other addresses)"


class WrongKeyLog:
    """Counts refused requests per client address and logs them at most once per period and address."""

    def __init__(self, period: float = PERIOD, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self.clock = clock
        self._since = clock()
        self._seen: Counter[str] = Counter()  # refused requests this period, by address

    def note(self, address: str) -> bool:
        """Count one request refused for its key; True for the first of the period from `address`."""
        now = self.clock()
        if now - self._since >= self.period:
            self.flush(now)
        first = address not in self._seen
        if first and len(self._seen) >= MAX_ADDRESSES:  # a spread-out guesser must not grow this without bound
            address, first = OTHERS, False
        self._seen[address] += 1
        return first

    def flush(self, now: float | None = None) -> None:
        """Log how many more were refused since the period began, by address (the busiest five), and restart."""
        more = {address: count - 1 for address, count in self._seen.items() if count > 1}
        if more:
            busiest = ", ".join(f"{address or '?'} x{count}" for address, count in Counter(more).most_common(5))
            log.warning("refused %d more requests with a wrong or missing API key in the last %.0f s from %d "
                        "address(es): %s", sum(more.values()), (now or self.clock()) - self._since, len(more),
                        busiest)
        self._seen.clear()
        self._since = now if now is not None else self.clock()
