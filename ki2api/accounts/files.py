"""Small JSON files shared by worker processes: read, replace atomically, stat, and lock without blocking gevent."""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

log = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.02
Stamp = Optional[tuple[int, int, int]]


class StoreError(Exception):
    """A file exists but cannot be used; the message names the file."""


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


def write_json_atomic(path: Path, data: Mapping[str, Any], like: os.stat_result | None = None,
                      durable: bool = True) -> None:
    """Replace `path` with `data` via a temporary file in the same directory; keep `like`'s mode and owner."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), stat.S_IMODE(like.st_mode) if like else 0o600)
            if like and os.geteuid() == 0 and like.st_uid != 0:  # root must not steal the IDE user's file
                os.fchown(handle.fileno(), like.st_uid, like.st_gid)
            json.dump(data, handle, indent=2)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


LEFTOVER_AGE = 60.0  # seconds: far longer than any write takes, so a write in progress elsewhere is never touched


def remove_leftovers(path: Path, min_age: float = LEFTOVER_AGE) -> list[Path]:
    """Delete write_json_atomic's temporary files for `path` older than `min_age` s: a kill between write and rename."""
    removed = []
    cutoff = time.time() - min_age
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.is_file() and leftover.stat().st_mtime < cutoff:
                leftover.unlink()
                removed.append(leftover)
    return removed


def is_writable(path: Path) -> bool:
    """True if `path` exists and may be rewritten: owner-writable (honoured even for root) and accessible."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IWUSR) and os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def file_stamp(path: Path) -> Stamp:
    """(inode, mtime_ns, size) of `path`, or None if it does not exist; a change means the file was rewritten."""
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
                raise TimeoutError(f"no lock within {timeout:g} s") from None
            time.sleep(LOCK_POLL_SECONDS)  # gevent-patched: yields to other greenlets


def _open_lock(path: Path, create_dir: bool) -> int:
    if create_dir:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, fallback: Path | None = None) -> Iterator[Path | None]:
    """Hold an exclusive lock on `path` (created 0600); TimeoutError if another process keeps it past `timeout`.
    Yields the lock file actually held (None if none could be created).

    With a `fallback`, `path` is in someone else's directory (never created): if no lock file can be made
    there, the lock is `fallback` instead. If no lock file can be created at all, warn and go on unlocked:
    serving beats coordinating.
    """
    try:
        fd, why = _open_lock(path, create_dir=fallback is None), None
    except OSError as exc:
        fd, why = -1, exc.strerror or type(exc).__name__
    if why is not None and fallback is not None:
        log.debug("cannot create the lock %s (%s); locking %s instead", path, why, fallback)
        with file_lock(fallback, timeout) as held:
            yield held
        return
    if why is not None:
        log.warning("cannot create the lock %s (%s); worker processes are not coordinated", path, why)
        yield None
        return
    try:
        _flock(fd, timeout)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
