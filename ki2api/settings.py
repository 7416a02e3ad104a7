"""Typed configuration read from the environment (or `.env`, loaded by wsgi.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

DEFAULT_API_KEY = "ki2api-key-2024"
DEFAULT_TOKEN_FILE = "~/.aws/sso/cache/kiro-auth-token.json"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw}")
    return value


def _url(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip() or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


@dataclass(frozen=True)
class Settings:
    """Everything ki2api can be told; defaults match the README's table."""

    host: str = "0.0.0.0"
    port: int = 8989
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    token_file: str = os.path.expanduser(DEFAULT_TOKEN_FILE)
    access_token: str | None = None
    refresh_token: str | None = None
    api_base: str = "https://q.us-east-1.amazonaws.com"
    refresh_url: str = "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken"
    oidc_url: str = "https://oidc.us-east-1.amazonaws.com/token"
    profile_arn: str | None = None
    state_dir: str = os.path.expanduser("~/.cache/ki2api")
    workers: int = 1
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    refresh_margin: float = 300.0
    refresh_timeout: float = 30.0
    max_body_bytes: int = 20 * 1024 * 1024
    log_level: str = "INFO"

    @property
    def uses_default_key(self) -> bool:
        """True while the documented default client key is accepted."""
        return DEFAULT_API_KEY in self.api_keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Settings":
        """Build settings from a mapping of environment variables; raise ConfigError on bad values."""
        keys = tuple(k.strip() for k in environ.get("API_KEY", DEFAULT_API_KEY).split(",") if k.strip())
        if not keys:
            raise ConfigError("API_KEY must hold at least one key")
        level = environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        token_file = environ.get("KIRO_TOKEN_FILE", "").strip() or DEFAULT_TOKEN_FILE
        state_dir = environ.get("KI2API_STATE_DIR", "").strip() or "~/.cache/ki2api"
        return cls(
            host=environ.get("HOST", "").strip() or "0.0.0.0",
            port=_int(environ, "PORT", 8989, minimum=1),
            api_keys=keys,
            token_file=os.path.expanduser(token_file),
            access_token=_optional(environ, "KIRO_ACCESS_TOKEN"),
            refresh_token=_optional(environ, "KIRO_REFRESH_TOKEN"),
            api_base=_url(environ, "KIRO_API_BASE", cls.api_base),
            refresh_url=_url(environ, "KIRO_REFRESH_URL", cls.refresh_url),
            oidc_url=_url(environ, "KIRO_OIDC_URL", cls.oidc_url),
            profile_arn=_optional(environ, "KIRO_PROFILE_ARN"),
            state_dir=os.path.expanduser(state_dir),
            workers=_int(environ, "WEB_CONCURRENCY", 1, minimum=1),
            connect_timeout=_float(environ, "UPSTREAM_CONNECT_TIMEOUT", 10.0),
            read_timeout=_float(environ, "UPSTREAM_READ_TIMEOUT", 300.0),
            refresh_margin=_float(environ, "TOKEN_REFRESH_MARGIN", 300.0),
            refresh_timeout=_float(environ, "TOKEN_REFRESH_TIMEOUT", 30.0),
            max_body_bytes=_int(environ, "MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024),
            log_level=level,
        )
