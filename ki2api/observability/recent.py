"""The latest request summaries of every gunicorn worker, for the status page ("recent requests", "recent errors").

Each worker keeps its own in memory. Under gunicorn (PROMETHEUS_MULTIPROC_DIR names a directory, see
web/gunicorn_hooks.py) it also appends each one as a JSON line to `<kind>-<pid>.jsonl` there, so whichever
worker answers the status page can show every worker's: one small write per request, and a file is cut back
to the last `limit` lines once it holds twice that. The summaries hold only the request log's plain fields.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from collections import deque
from typing import Any

log = logging.getLogger(__name__)


class RecentLog:
    """The newest `limit` entries of one kind ("requests", "errors"): this worker's, plus the other workers' files."""

    def __init__(self, kind: str, directory: str | None, limit: int, pid: int | None = None) -> None:
        self.limit = limit
        self.items: deque[dict[str, Any]] = deque(maxlen=limit)
        self.pattern = os.path.join(directory, f"{kind}-*.jsonl") if directory else None
        self.path = os.path.join(directory, f"{kind}-{pid or os.getpid()}.jsonl") if directory else None
        self._file: Any = None
        self._lines = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Keep an entry (it needs a float `t`, the time it was made), in memory and in this worker's file."""
        self.items.appendleft(entry)
        if self.path is None:
            return
        try:
            if self._lines >= 2 * self.limit:
                self._rewrite()
            else:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # one write() per line
                self._file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
                self._lines += 1
        except OSError as exc:  # a full or read-only disk: the page then shows this worker's entries only
            log.warning("status page: cannot write %s (%s); showing this worker's requests only", self.path,
                        exc.strerror)
            self.path = None

    def _rewrite(self) -> None:
        """Replace the file by the entries in memory (oldest first), atomically for a reader."""
        if self._file is not None:
            self._file.close()
            self._file = None
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in reversed(self.items))
        os.replace(temporary, self.path)
        self._lines = len(self.items)

    def close(self) -> None:
        """Close this worker's file (it stays for the other workers to read)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def latest(self) -> list[dict[str, Any]]:
        """The newest `limit` entries over every worker's file (this worker's memory without a directory)."""
        if self.pattern is None or self.path is None:
            return list(self.items)
        entries: list[dict[str, Any]] = []
        for name in glob.glob(self.pattern):
            entries.extend(_tail(name, self.limit))
        entries.sort(key=lambda e: e.get("t", 0.0), reverse=True)
        return entries[:self.limit]


def _tail(path: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` entries of a file; a line still being written (or cut) is skipped."""
    try:
        with open(path, encoding="utf-8") as source:
            lines = source.read().splitlines()[-limit:]
    except OSError:  # its worker is replacing it right now, or it is gone
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
