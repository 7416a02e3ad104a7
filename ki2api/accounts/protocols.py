"""What the layers of the accounts package share: the token share and the shared state they are written to.

`TokenShare` is what a TokenStore needs (refreshed tokens, refresh locks, account flags); `SharedState` adds
what the pool needs. Both are implemented by `file_state.FileState` (files under KI2API_STATE_DIR, for
workers on one machine) and `redis_state.RedisState` (Redis, for several machines).

Account state is one JSON value per (field, account): field "cooldown" {until, kind, message, failures, at},
"disabled" {why, at, fingerprint}, "usage" (credits.parse_usage plus fetched_at), "last_error"
{at, kind, message}, "last_refresh" {at, ok, error, fingerprint, kind} (the last call to the refresh endpoint,
by any process: the fingerprint of the refresh token it spent, and for a failure its kind, "unavailable" or
"refused", which every process honours for token_manager.FAILURE_COOLDOWN seconds),
"models" and "model_refusals" (the account's model list and the models Kiro refused it: entitlement.py),
"quarantine" {at, until (None: until a person clears it), why} (Kiro suspended or locked the account).
"cache_refusals" `{Kiro id: {"at", "until"}}`: models Kiro refused cache points for (upstream/cache_refusals.py).
Counters are integers per (counter, account): "requests", "errors", "credits_micro" (millionths of the credits
Kiro charged, from its meteringEvents; usage's `credits_counted` is its value when the usage was fetched).
Each account also has a machine id (64 hex, identity.py), created once by whichever process asks first and
never changed by ki2api afterwards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ContextManager, Hashable, Protocol

FIELDS = ("cooldown", "disabled", "usage", "last_error", "last_refresh", "models", "model_refusals",
          "quarantine", "cache_refusals")
COUNTERS = ("requests", "errors", "credits_micro")
AccountStates = dict[str, dict[str, dict[str, Any]]]  # account name -> field -> value


class NoSharedLock(Exception):
    """The lock that serialises every replica's refresh cannot be had (Redis is unreachable) and no lock that
    still serialises them (the token file's own) stands in: refreshing now could spend a rotating refresh
    token twice."""


class TokenShare(Protocol):
    """Where refreshed tokens, refresh locks, account flags and machine ids are shared between processes: token
    records by account name (Redis) or key (files), `publish_tokens` only over an ancestor, `update`/`states` as
    above, `machine_id` creating the account's id under the state's lock if it has none yet."""

    def read_tokens(self, name: str, key: str) -> list[dict[str, Any]]: ...

    def write_tokens(self, name: str, key: str, record: dict[str, Any], local: bool) -> str: ...

    def publish_tokens(self, name: str, key: str, record: dict[str, Any]) -> None: ...

    def remember_tokens(self, key: str, record: dict[str, Any],
                        supersedes: Callable[[dict[str, Any]], bool]) -> None: ...

    def tokens_stamp(self, name: str, key: str) -> Hashable: ...

    def refresh_lock(self, name: str, key: str, timeout: float,
                     beside: Path | None = None) -> ContextManager[Path | None]: ...

    def states(self) -> AccountStates: ...

    def update(self, name: str, field: str, value: dict[str, Any] | None) -> None: ...

    def machine_id(self, name: str) -> str: ...


class SharedState(TokenShare, Protocol):
    """What the pool needs besides the token share: account states, counters, claims, a status, and `take`:
    one of `limit` request starts per `window` seconds for an account (0.0), or the seconds until one frees."""

    backend: str

    def add_counts(self, deltas: dict[str, dict[str, int]]) -> None: ...

    def counts(self) -> dict[str, dict[str, int]]: ...

    def claim(self, name: str, ttl: float) -> bool: ...

    def take(self, name: str, limit: int, window: float) -> float: ...

    def status(self) -> dict[str, Any]: ...
