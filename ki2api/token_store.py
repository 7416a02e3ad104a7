"""Kiro credentials on disk: the IDE's token file, its IdC companion, ki2api's state files and refresh lock.

No HTTP and no policy here: `TokenStore` reads and writes; `tokens.TokenManager` decides when to refresh.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Optional

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
LOCK_POLL_SECONDS = 0.02
_TOKEN_KEYS = ("accessToken", "refreshToken", "expiresAt", "profileArn")
Stamp = Optional[tuple[int, int, int]]


class StoreError(Exception):
    """A credential file exists but cannot be used; the message names the file."""


class MissingCredential(StoreError):
    """There is no credential at all: no token file and no KIRO_* token."""


@dataclass(frozen=True)
class Credential:
    """One Kiro login. Tokens, secrets and the client id never appear in repr()."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    auth_method: Literal["social", "idc"]
    profile_arn: str | None
    region: str
    client_id: str | None = field(repr=False)
    client_secret: str | None = field(repr=False)
    source: Literal["file", "env"]

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True if there is no access token, or it is known to expire within `seconds` (negative: already)."""
        if not self.access_token:
            return True
        if self.expires_at is None:  # an env token of unknown age: valid until the upstream rejects it
            return False
        return self.expires_at - (now or datetime.now(timezone.utc)) <= timedelta(seconds=seconds)


@dataclass(frozen=True)
class Snapshot:
    """What one load saw: the credential, the token file's JSON (for write-back) and the files' stamps."""

    credential: Credential
    file_data: dict[str, Any] | None
    stamp: tuple[Stamp, Stamp]


def parse_expiry(value: Any) -> datetime | None:
    """An `expiresAt` string as an aware datetime (naive means UTC); None if absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        log.warning("ignoring an unreadable expiresAt %r", value[:40])
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_expiry(moment: datetime) -> str:
    """An aware datetime the way the Kiro IDE writes `expiresAt`: 2025-12-31T02:32:45.144Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if there is no such file; StoreError if it is unreadable or not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise StoreError(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path} does not hold a JSON object")
    return data


def write_json_atomic(path: Path, data: Mapping[str, Any], like: os.stat_result | None = None) -> None:
    """Replace `path` with `data` via a temporary file in the same directory; keep `like`'s mode and owner."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), stat.S_IMODE(like.st_mode) if like else 0o600)
            if like and os.geteuid() == 0 and like.st_uid != 0:  # root must not steal the IDE user's file
                os.fchown(handle.fileno(), like.st_uid, like.st_gid)
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def is_writable(path: Path) -> bool:
    """True if `path` exists and may be rewritten: owner-writable (honoured even for root) and accessible."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IWUSR) and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def find_client(token_path: Path, client_id_hash: str | None) -> dict[str, Any] | None:
    """The IdC client registration: `<dir>/<clientIdHash>.json`, or without a hash the newest *.json that has one."""
    directory = token_path.parent
    if client_id_hash:
        candidates = [directory / f"{Path(client_id_hash).name}.json"]
    else:
        others = [p for p in directory.glob("*.json") if p.name != token_path.name]
        candidates = sorted(others, key=lambda p: _stamp(p) or (0, 0, 0), reverse=True)
    for path in candidates:
        with contextlib.suppress(StoreError):
            data = read_json(path)
            if data and isinstance(data.get("clientId"), str) and isinstance(data.get("clientSecret"), str):
                return data
    return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def credential_from(raw: Mapping[str, Any], source: Literal["file", "env"],
                    client: Mapping[str, Any] | None) -> Credential:
    """Build a Credential from Kiro-IDE-shaped fields (plus the IdC client registration, if any)."""
    method: Literal["social", "idc"] = "idc" if str(raw.get("authMethod", "")).lower() == "idc" else "social"
    client = client or {}
    return Credential(
        access_token=_text(raw.get("accessToken")) or "", refresh_token=_text(raw.get("refreshToken")),
        expires_at=parse_expiry(raw.get("expiresAt")), auth_method=method, profile_arn=_text(raw.get("profileArn")),
        region=_text(raw.get("region")) or DEFAULT_REGION, client_id=_text(client.get("clientId")),
        client_secret=_text(client.get("clientSecret")), source=source)


def _stamp(path: Path) -> Stamp:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _flock(fd: int, timeout: float) -> None:
    """Take LOCK_EX without ever blocking in the kernel, so a gevent hub keeps serving while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no refresh lock within {timeout:g} s") from None
            time.sleep(LOCK_POLL_SECONDS)  # gevent-patched: yields to other greenlets


class TokenStore:
    """Where one credential lives: the token file, or env tokens; plus a state file and a lock in state_dir."""

    def __init__(self, token_file: str, state_dir: str, env_access: str | None, env_refresh: str | None) -> None:
        self.token_path = Path(token_file)
        self.state_dir = Path(state_dir)
        self.env = (env_access, env_refresh) if env_access or env_refresh else None
        self.source: Literal["file", "env"] = "env" if self.env else "file"
        origin = f"env:{env_refresh or env_access}" if self.env else f"file:{os.path.abspath(token_file)}"
        name = f"{self.source}-{hashlib.sha256(origin.encode()).hexdigest()[:32]}"
        self.state_path = self.state_dir / f"{name}.json"
        self.lock_path = self.state_dir / f"{name}.lock"

    def stamp(self) -> tuple[Stamp, Stamp]:
        """Identity of the token and state files as they are now; a change means: load again."""
        return _stamp(self.token_path), _stamp(self.state_path)

    def load(self) -> Snapshot:
        """Read the credential as the files (and env) hold it now."""
        stamp = self.stamp()  # taken first, so a write racing this read shows up as a change next time
        if self.env:
            file_data = self._optional_file()
            raw = {k: v for k, v in (file_data or {}).items() if k not in _TOKEN_KEYS[:3]}
            raw.update(accessToken=self.env[0], refreshToken=self.env[1])
            raw.update(self._state_tokens())
        else:
            file_data = read_json(self.token_path)
            if file_data is None:
                raise MissingCredential(f"no Kiro token file at {self.token_path}")
            raw = dict(file_data)
            if stamp[1] and stamp[0] and stamp[1][1] >= stamp[0][1]:  # our fallback copy is newer than the file
                raw.update(self._state_tokens())
        client = None
        if str(raw.get("authMethod", "")).lower() == "idc":
            client = find_client(self.token_path, _text(raw.get("clientIdHash")))
        return Snapshot(credential_from(raw, self.source, client), file_data, stamp)

    def save(self, credential: Credential, previous: Snapshot) -> tuple[Snapshot, str]:
        """Persist a refreshed credential where every worker reads; return the new snapshot and where it went."""
        tokens = {"accessToken": credential.access_token, "refreshToken": credential.refresh_token,
                  "expiresAt": format_expiry(credential.expires_at) if credential.expires_at else None,
                  "profileArn": credential.profile_arn}
        tokens = {k: v for k, v in tokens.items() if v is not None}
        file_data = previous.file_data
        if self.env is None and file_data is not None and is_writable(self.token_path):
            merged = {**file_data, **tokens}
            try:
                write_json_atomic(self.token_path, merged, like=self.token_path.stat())
                return Snapshot(credential, merged, self.stamp()), str(self.token_path)
            except OSError as exc:
                log.warning("cannot write %s (%s); keeping the refreshed token in %s",
                            self.token_path, exc.strerror, self.state_dir)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(self.state_path, {**tokens, "savedAt": format_expiry(datetime.now(timezone.utc))})
        return Snapshot(credential, file_data, self.stamp()), str(self.state_path)

    @contextlib.contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """Hold the cross-process refresh lock; TimeoutError if another process keeps it past `timeout`."""
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("cannot create the refresh lock %s (%s); worker processes may refresh twice",
                        self.lock_path, exc.strerror)
            fd = None
        if fd is None:
            yield
            return
        try:
            _flock(fd, timeout)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _optional_file(self) -> dict[str, Any] | None:
        try:
            return read_json(self.token_path)
        except StoreError as exc:
            log.warning("ignoring the token file for its non-token fields: %s", exc)
            return None

    def _state_tokens(self) -> dict[str, Any]:
        try:
            state = read_json(self.state_path) or {}
        except StoreError as exc:
            log.warning("ignoring the ki2api state file: %s", exc)
            return {}
        return {k: state[k] for k in _TOKEN_KEYS if isinstance(state.get(k), str)}
