"""The shared state in files under KI2API_STATE_DIR, locked with flock: for the worker processes of one machine.

`redis_state.RedisState` writes through to a FileState, so each machine keeps a local view when Redis goes
away. What the state holds is described in protocols.py.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, ContextManager

from .files import Stamp, StoreError, file_lock, file_stamp, read_json, write_json_atomic
from .identity import is_machine_id, new_machine_id
from .protocols import AccountStates

log = logging.getLogger(__name__)

STATE_LOCK_TIMEOUT = 5.0


class FileState:
    """SharedState in files: `<key>.json` token records with `<key>.lock` (unless the token file's own lock is
    used), plus pool-state.json, pool-counts.json and machine-ids.json."""

    backend = "files"

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.state_path = self.dir / "pool-state.json"
        self.counts_path = self.dir / "pool-counts.json"
        self.lock_path = self.dir / "pool.lock"
        self.ids_path = self.dir / "machine-ids.json"
        self.starts_path = self.dir / "pool-starts.json"
        self._cache: tuple[Stamp, dict[str, Any]] = (None, {})

    # -- tokens --------------------------------------------------------------------------------------------------

    def read_tokens(self, name: str, key: str) -> list[dict[str, Any]]:
        """The token record a refresh left in the state directory, if any."""
        try:
            record = read_json(self.dir / f"{key}.json")
        except StoreError as exc:
            log.warning("ignoring the ki2api state file: %s", exc)
            return []
        return [record] if record else []

    def write_tokens(self, name: str, key: str, record: dict[str, Any], local: bool) -> str:
        """Keep `record` in the state directory when nothing else holds it (`local`); return the path or ''."""
        if not local:
            return ""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.dir / f"{key}.json"
        write_json_atomic(path, record)
        return str(path)

    def publish_tokens(self, name: str, key: str, record: dict[str, Any]) -> None:
        """Nothing to repair: the files are the shared copy."""

    def remember_tokens(self, key: str, record: dict[str, Any],
                        supersedes: Callable[[dict[str, Any]], bool]) -> None:
        """Keep `record` (the login last read from the token file) in the state directory, unless the record
        kept there holds the same or `supersedes(kept)` is false (a newer one was kept meanwhile): what every
        worker serves while that file cannot be parsed. Raises OSError or TimeoutError."""
        path = self.dir / f"{key}.json"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(self.lock_path, STATE_LOCK_TIMEOUT):
            try:
                kept = read_json(path)
            except StoreError:
                kept = None
            if kept is not None and (_without_saved(kept) == _without_saved(record) or not supersedes(kept)):
                return
            write_json_atomic(path, record)

    def tokens_stamp(self, name: str, key: str) -> Stamp:
        """The stamp of the token record file."""
        return file_stamp(self.dir / f"{key}.json")

    def refresh_lock(self, name: str, key: str, timeout: float,
                     beside: Path | None = None) -> ContextManager[Path | None]:
        """The flock every worker on this machine takes before refreshing this account: `beside` (the token
        file's lock) if given and it can be created, else `<key>.lock` in the state directory; yields the lock
        file held."""
        own = self.dir / f"{key}.lock"
        return file_lock(beside, timeout, fallback=own) if beside else file_lock(own, timeout)

    # -- account state -------------------------------------------------------------------------------------------

    def states(self) -> AccountStates:
        """Every account's cooldown, disabled flag, usage and last error, as last written by any worker."""
        return {name: dict(fields) for name, fields in self._read(self.state_path).get("accounts", {}).items()
                if isinstance(fields, dict)}

    def update(self, name: str, field: str, value: dict[str, Any] | None) -> None:
        """Set (or with None, clear) one field of one account."""
        def change(data: dict[str, Any]) -> None:
            fields = data.setdefault("accounts", {}).setdefault(name, {})
            if value is None:
                fields.pop(field, None)
            else:
                fields[field] = value
        self._modify(self.state_path, change)

    def machine_id(self, name: str) -> str:
        """The account's machine id; the first process to ask creates it, under the pool lock (raises OSError,
        TimeoutError or StoreError if the state directory cannot be used)."""
        return self.keep_machine_id(name, None)

    def keep_machine_id(self, name: str, value: str | None) -> str:
        """Store `value` as the account's machine id (None: keep the stored one, or create one); return it."""
        known = read_json(self.ids_path) or {}
        if is_machine_id(known.get(name)) and value in (None, known[name]):
            return str(known[name])
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with file_lock(self.lock_path, STATE_LOCK_TIMEOUT):
            known = read_json(self.ids_path) or {}
            if value is None and is_machine_id(known.get(name)):
                return str(known[name])  # another process created it meanwhile
            known[name] = value or new_machine_id()
            write_json_atomic(self.ids_path, known)
        return str(known[name])

    def add_counts(self, deltas: dict[str, dict[str, int]]) -> None:
        """Add per-account counter increments."""
        def change(data: dict[str, Any]) -> None:
            for name, counters in deltas.items():
                stored = data.setdefault(name, {})
                for counter, delta in counters.items():
                    stored[counter] = int(stored.get(counter, 0)) + delta
        self._modify(self.counts_path, change)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per-account counters summed over every worker."""
        return {name: dict(c) for name, c in self._read(self.counts_path).items() if isinstance(c, dict)}

    def claim(self, name: str, ttl: float) -> bool:
        """True for the one caller per `ttl` seconds that may do job `name` (e.g. poll one account's usage)."""
        won = False
        now = time.time()

        def change(data: dict[str, Any]) -> None:
            nonlocal won
            claims = data.setdefault("claims", {})
            if float(claims.get(name, 0.0)) + ttl <= now:
                claims[name], won = now, True
        self._modify(self.state_path, change)
        return won

    def take(self, name: str, limit: int, window: float) -> float:
        """Note a request start on account `name` if fewer than `limit` started in the last `window` seconds (0.0);
        else the seconds until the oldest leaves the window. A state that cannot be written lets it through."""
        now, wait = time.time(), 0.0

        def change(data: dict[str, Any]) -> None:
            nonlocal wait
            starts = [float(t) for t in data.get(name, []) if isinstance(t, (int, float)) and t > now - window]
            if len(starts) >= limit:
                wait = min(starts) + window - now
            else:
                starts.append(now)
            data[name] = starts
        self._modify(self.starts_path, change)
        return max(0.0, wait)

    def status(self) -> dict[str, Any]:
        """The backend for /health."""
        return {"backend": self.backend, "dir": str(self.dir), "connected": True}

    def _read(self, path: Path) -> dict[str, Any]:
        stamp = file_stamp(path)
        if path == self.state_path and stamp is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = read_json(path) or {}
        except StoreError as exc:
            log.warning("ignoring a broken state file: %s", exc)
            data = {}
        if path == self.state_path:
            self._cache = (stamp, data)
        return data

    def _modify(self, path: Path, change: Any) -> None:
        """Read-modify-write under the pool lock; a failure is logged, never raised into a request."""
        try:
            with file_lock(self.lock_path, STATE_LOCK_TIMEOUT):
                try:
                    data = read_json(path) or {}
                except StoreError:
                    data = {}
                change(data)
                write_json_atomic(path, data, durable=False)
        except (OSError, TimeoutError) as exc:
            log.warning("could not update %s: %s", path, exc)


def _without_saved(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "savedAt"}
