"""The account store: accounts added by `login`, `import` or the status page, one file each in the state directory.

`<KI2API_STATE_DIR>/accounts/<name>.json`, mode 0600 in a 0700 directory, holds
    {"addedAt": "...", "via": "login:builder-id", "client": {"secretExpiresAt": "..."},
     "accounts": [{"name": "<name>", "enabled": true, "refreshToken": "...", ...}]}
The "accounts" list is the accounts-file format (config.read_entries), so each file is read and refreshed like
an inline KIRO_ACCOUNTS_FILE entry: refreshed tokens go to the shared state, never back to this file. The
directory's modification time changes on every add, remove, rename, enable and disable (each is an atomic
rename), which is how every worker notices a change with one `stat` (accounts/live.py).
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import read_entries
from .credential import fingerprint, format_expiry
from .files import Stamp, StoreError, file_stamp, read_json, write_json_atomic

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
DIRECTORY = "accounts"


@dataclass(frozen=True)
class Stored:
    """One stored account: its name, file, whether it is enabled, and its credential entry (secrets inside)."""

    name: str
    path: Path
    enabled: bool
    via: str
    added_at: str
    entry: dict[str, Any]

    @property
    def secret_fingerprint(self) -> str | None:
        """The fingerprint of what identifies the login: its refresh token, or the API key (no refresh token)."""
        return fingerprint(self.entry.get("refreshToken") or self.entry.get("accessToken"))


class AccountStore:
    """The stored accounts of one state directory."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.directory = Path(state_dir).expanduser() / DIRECTORY

    def stamp(self) -> Stamp:
        """The directory's identity and modification time: a change means an account was added or changed."""
        return file_stamp(self.directory)

    def path(self, name: str) -> Path:
        """Where account `name` lives."""
        return self.directory / f"{name}.json"

    def accounts(self) -> list[Stored]:
        """Every stored account, by name; StoreError if a file cannot be read."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob("*.json")):
            if not path.name.startswith("."):
                found.append(self._read(path))
        return found

    def get(self, name: str) -> Stored:
        """The stored account `name`; StoreError if there is none."""
        path = self.path(name)
        if not NAME.fullmatch(name) or not path.is_file():
            raise StoreError(f"no stored account named {name!r}")
        return self._read(path)

    def find(self, entry: dict[str, Any]) -> Stored | None:
        """The stored account holding the same login as `entry` (same refresh token, or same API key), if any."""
        secret = fingerprint(entry.get("refreshToken") or entry.get("accessToken"))
        return next((s for s in self.accounts() if s.secret_fingerprint == secret), None)

    def add(self, entry: dict[str, Any], via: str, name: str | None = None,
            client: dict[str, Any] | None = None) -> tuple[Stored, bool]:
        """Store a login as a new account; if the same login is stored already, that account (and False)."""
        existing = self.find(entry)
        if existing is not None:
            return existing, False
        name = name or self.free_name(via.split(":")[-1])
        if not NAME.fullmatch(name):
            raise StoreError(f"an account name is 1-64 letters, digits or _.@+- (got {name!r})")
        if self.path(name).exists():
            raise StoreError(f"an account named {name!r} exists already; choose another --name")
        record = {"addedAt": format_expiry(datetime.now(timezone.utc)), "via": via, "client": client or {},
                  "accounts": [{**entry, "name": name, "enabled": True}]}
        self._write(name, record)
        return self.get(name), True

    def free_name(self, base: str) -> str:
        """`base` (made a valid name), or `base-2`, `base-3`...: the first not taken."""
        base = re.sub(r"[^A-Za-z0-9_.@+-]", "-", base).strip("-.")[:56] or "account"
        taken = {p.stem for p in self.directory.glob("*.json")} if self.directory.is_dir() else set()
        return next(n for n in (base if i == 1 else f"{base}-{i}" for i in range(1, 10_000)) if n not in taken)

    def set_enabled(self, name: str, enabled: bool) -> Stored:
        """Enable or disable account `name` (every worker sees it at its next request)."""
        stored = self.get(name)
        record = read_json(stored.path) or {}
        record["accounts"] = [{**stored.entry, "enabled": enabled}]
        self._write(name, record)
        return self.get(name)

    def replace(self, old: str, new: str, entry: dict[str, Any]) -> Stored:
        """Store account `old` as `new` with `entry` (its freshest tokens), then delete `old`'s file."""
        stored = self.get(old)
        if not NAME.fullmatch(new):
            raise StoreError(f"an account name is 1-64 letters, digits or _.@+- (got {new!r})")
        if new != old and self.path(new).exists():
            raise StoreError(f"an account named {new!r} exists already")
        record = read_json(stored.path) or {}
        record["accounts"] = [{**entry, "name": new, "enabled": stored.enabled}]
        self._write(new, record)
        if new != old:
            stored.path.unlink()
        return self.get(new)

    def remove(self, name: str) -> None:
        """Delete account `name`'s file, its secrets with it."""
        self.get(name).path.unlink()
        with contextlib.suppress(OSError):
            os.utime(self.directory)  # the unlink changed it already; this makes the change visible to coarse clocks

    def _write(self, name: str, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self.path(name), record)  # mode 0600
        now = time.time()
        with contextlib.suppress(OSError):  # a second change within the clock's tick must still show
            os.utime(self.directory, (now, now))

    def _read(self, path: Path) -> Stored:
        entry = read_entries(path)[0] if path.is_file() else None
        if entry is None:
            raise StoreError(f"{path} holds no account")
        record = read_json(path) or {}
        return Stored(entry["name"], path, bool(entry.get("enabled", True)), str(record.get("via", "")),
                      str(record.get("addedAt", "")), entry)
