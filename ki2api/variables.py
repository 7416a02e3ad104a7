"""Parsers of environment variables: each takes (name, raw value or None if unset, default) and returns the value.

Standard library only (see ki2api.settings). A malformed value raises ConfigError naming the variable.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

Parser = Callable[[str, "str | None", Any], Any]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def integer(minimum: int = 0) -> Parser:
    """An integer of at least `minimum`; unset or blank: the default."""
    def parse(name: str, raw: str | None, default: int) -> int:
        text = (raw or "").strip()
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value
    return parse


def positive(name: str, raw: str | None, default: float) -> float:
    """A number above 0; unset or blank: the default."""
    text = (raw or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {text}")
    return value


def seconds_or_off(name: str, raw: str | None, default: float) -> float:
    """A positive number of seconds, or 0 for off."""
    if (raw or "").strip() in ("0", "0.0"):
        return 0.0
    return positive(name, raw, default)


def text(name: str, raw: str | None, default: str) -> str:
    """The value stripped; unset or blank: the default."""
    return (raw or "").strip() or default


def version(name: str, raw: str | None, default: str) -> str:
    """A dotted version number such as 0.11.107; unset or blank: the default."""
    value = (raw or "").strip() or default
    if not re.fullmatch(r"\d{1,4}(\.\d{1,6}){1,3}", value):
        raise ConfigError(f"{name} must be a dotted version number such as 0.11.107, got {value!r}")
    return value


def machine_id(name: str, raw: str | None, default: None) -> str | None:
    """64 lower-case hex digits (a Kiro machine id), or None if unset or blank."""
    value = (raw or "").strip()
    if not value:
        return default
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ConfigError(f"{name} must be 64 lower-case hex digits (a Kiro IDE machine id)")
    return value


def optional(name: str, raw: str | None, default: None) -> str | None:
    """The value stripped, None if unset or blank."""
    return (raw or "").strip() or None


def path(name: str, raw: str | None, default: str) -> str:
    """A file system path with `~` expanded; unset or blank: the default."""
    return os.path.expanduser((raw or "").strip() or default)


def url(name: str, raw: str | None, default: str) -> str:
    """An http(s) URL without its trailing slash."""
    value = (raw or "").strip() or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def redis_url(name: str, raw: str | None, default: None) -> str | None:
    """A redis://, rediss:// or unix:// URL, or None; the error shows no password."""
    value = (raw or "").strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL, got {value.split('@')[-1]!r}")
    return value or None


def choice(*choices: str) -> Parser:
    """One of `choices`, compared in lower case."""
    def parse(name: str, raw: str | None, default: str) -> str:
        value = (raw or "").strip().lower() or default
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    return parse


def level(name: str, raw: str | None, default: str) -> str:
    """A logging level name, in upper case."""
    value = (raw or "").strip().upper() or default
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return value


def flag(name: str, raw: str | None, default: bool) -> bool:
    """true/false, 1/0, yes/no, on/off; unset or blank: false."""
    value = (raw or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def exactly_one(name: str, raw: str | None, default: bool) -> bool:
    """True only for `1`: a switch no deployment should set by accident."""
    return (raw or "").strip() == "1"


def keys(name: str, raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated keys; unset: the default; set but empty: ConfigError (a server nobody may use)."""
    if raw is None:
        return default
    found = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not found:
        raise ConfigError(f"{name} must hold at least one key")
    return found


def origins(name: str, raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """`*`, or comma-separated origins like https://app.example.com[:port] (no path)."""
    found = tuple(o.strip().rstrip("/") for o in (raw or "").split(",") if o.strip())
    for origin in found:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not sep or not rest or "/" in rest):
            raise ConfigError(f"{name} must be '*' or origins like https://app.example.com, got {origin!r}")
    return found


def gc_thresholds(name: str, raw: str | None, default: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """Three comma-separated positive integers; `python` for Python's own collector, left as it is (None)."""
    value = (raw or "").strip()
    if not value:
        return default
    if value.lower() == "python":
        return None
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"{name} must be 'python' or three positive integers like 10000,50,100, got {value!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])
