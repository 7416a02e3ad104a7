"""A pool's accounts and this worker's view of their shared state: the base the pool and its parts build on.

Account state (cooldowns, quarantines, disabled flags, usage, last error) lives in a SharedState and is read
at most once per VIEW_TTL per worker; a write is seen in this worker at once. Counters (requests, errors,
credits) are summed locally and added to the shared state once per FLUSH_INTERVAL.
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from .cooldown import CooldownPolicy
from .protocols import AccountStates, SharedState
from .token_manager import TokenManager

VIEW_TTL = 1.0  # seconds a worker trusts its copy of the shared account state
FLUSH_INTERVAL = 1.0  # seconds between counter flushes to the shared state
ERROR_NOTE_INTERVAL = 1.0  # at most one shared last_error write per account per second


@dataclass(eq=False)
class Account:
    """One configured Kiro account and this worker's hold on it."""

    name: str
    weight: float
    enabled: bool
    tokens: TokenManager
    max_concurrency: int | None = None  # the accounts file's limits (None: none)
    rpm: int | None = None
    in_flight: int = 0
    noted_at: float = 0.0


class Roster:
    """The accounts, their shared state, and this worker's copy of it and counters (AccountPool is one)."""

    def __init__(self, accounts: list[Account], shared: SharedState, policy: CooldownPolicy,
                 rng: random.Random | None = None) -> None:
        self.accounts = accounts
        self.shared = shared
        self.policy = policy
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # created after gevent patched threading
        self._view: AccountStates = {}
        self._view_at = float("-inf")
        self._pending: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._flusher = False  # a thread (a greenlet under gevent) sends the counters while there are some

    def note_error(self, account: Account, kind: str, error: ApiError) -> None:
        """Count an error; share it as the account's last error (at most once a second per worker)."""
        self._count(account.name, "errors")
        now = time.time()
        if now - account.noted_at >= ERROR_NOTE_INTERVAL:
            account.noted_at = now
            self.write(account.name, "last_error", {"at": now, "kind": kind, "status": error.status,
                                                    "message": error.message[:300]})

    def states(self, fresh: bool = False) -> AccountStates:
        """The shared account states, re-read at most once per VIEW_TTL (or now, if `fresh`)."""
        if fresh or time.monotonic() - self._view_at > VIEW_TTL:
            self._view, self._view_at = self.shared.states(), time.monotonic()
        return self._view

    def write(self, name: str, field: str, value: dict[str, Any] | None) -> None:
        """Set or clear one shared field, and see the change in this worker at once."""
        self.shared.update(name, field, value)
        fields = self._view.setdefault(name, {})
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value

    def counts(self) -> dict[str, dict[str, int]]:
        """Counters over every worker (and replica, with Redis)."""
        self.flush()
        return self.shared.counts()

    def flush(self) -> None:
        """Send the requests, errors and credits counted so far to the shared state."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        if pending:
            self.shared.add_counts({name: dict(c) for name, c in pending.items()})

    def _count(self, name: str, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._pending[name][counter] += amount
            if self._flusher:
                return
            self._flusher = True
        threading.Thread(target=self._flush_while_counting, name="ki2api-counters", daemon=True).start()

    def _flush_while_counting(self) -> None:
        """Flush once per FLUSH_INTERVAL, and stop after an interval in which nothing was counted."""
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()
            with self._lock:
                if not self._pending:
                    self._flusher = False
                    return
