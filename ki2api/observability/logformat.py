"""Structured log lines: every record becomes one line of logfmt or JSON (LOG_FORMAT).

A record may carry extra fields in `record.fields` (a dict), as the request summary does; they follow the
standard ones (ts, level, logger, msg). Tracebacks are folded into the same line.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, Mapping

FORMATS = ("logfmt", "json")
_MAX_VALUE = 2000  # a runaway value (say, an exception message quoting a body) cannot flood the log


def _clip(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + "..."


def logfmt_value(value: Any) -> str:
    """One logfmt value: bare when it is a plain word, else double-quoted with \\, " and newlines escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and all(c.isprintable() and c not in ' ="\\' for c in text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped) + '"'


def render(fields: Mapping[str, Any], fmt: str) -> str:
    """Fields as one line: `k=v k2="v 2"` (logfmt) or a compact JSON object (json)."""
    clipped = {key: _clip(value) for key, value in fields.items()}
    if fmt == "json":
        return json.dumps(clipped, ensure_ascii=False, separators=(",", ":"), default=str)
    return " ".join(f"{key}={logfmt_value(value)}" for key, value in clipped.items())


class StructuredFormatter(logging.Formatter):
    """Formats every record as one structured line with ts, level, logger, msg and the record's `fields`."""

    def __init__(self, fmt: str = "logfmt") -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        fields: dict[str, Any] = {"ts": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
                                  "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        fields.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return render(fields, self.fmt)


def configure_logging(level: str, fmt: str) -> None:
    """Route every log record of the process to stderr as structured lines (called by wsgi.py only)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
