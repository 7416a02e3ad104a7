"""Typed configuration read from the environment (or `.env`, loaded by wsgi.py).

Standard library only: gunicorn's master reads its settings through this module (config/gunicorn.conf.py)
before it forks the workers, and must not load flask or requests before gevent patches those.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Iterable, Mapping

DEFAULT_API_KEY = "ki2api-key-2024"
DEFAULT_TOKEN_FILE = "~/.aws/sso/cache/kiro-auth-token.json"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def env_int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """The integer variable `name` (`default` if unset or blank); ConfigError naming it if malformed or too small."""
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


def _origins(raw: str) -> tuple[str, ...]:
    """CORS_ORIGINS: `*`, or comma-separated origins like https://app.example.com[:port] (no path)."""
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not sep or not rest or "/" in rest):
            raise ConfigError(f"CORS_ORIGINS must be '*' or origins like https://app.example.com, got {origin!r}")
    return origins


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _redis_url(environ: Mapping[str, str]) -> str | None:
    value = environ.get("REDIS_URL", "").strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {value.split('@')[-1]!r}")
    return value or None


def _seconds_or_off(environ: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds where 0 means: off."""
    if environ.get(name, "").strip() in ("0", "0.0"):
        return 0.0
    return _float(environ, name, default)


def is_loopback(host: str) -> bool:
    """True for localhost and any address in 127.0.0.0/8 or ::1."""
    bare = host.strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    # the account pool and the state shared between workers and replicas
    token_dir: str | None = None
    accounts_file: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "ki2api"
    usage_interval: float = 900.0
    cooldown_base: float = 5.0
    cooldown_max: float = 300.0
    quota_cooldown: float = 3600.0
    ping_interval: float = 10.0
    # request limits, CORS, failed-key limiting, test-only debug endpoint
    max_messages: int = 10_000
    max_tools: int = 500
    max_image_bytes: int = 5 * 1024 * 1024
    body_read_timeout: float = 60.0
    cors_origins: tuple[str, ...] = ()
    auth_fail_limit: int = 0
    auth_fail_window: float = 300.0
    debug_endpoints: bool = False
    # log format, proxies trusted for X-Forwarded-For, /metrics without a key
    log_format: str = "logfmt"
    trusted_proxies: int = 0
    metrics_public: bool = False

    @property
    def uses_default_key(self) -> bool:
        """True while the documented default client key is accepted."""
        return DEFAULT_API_KEY in self.api_keys

    def default_key_warning(self, listening: Iterable[tuple[str, int]]) -> str | None:
        """The start-up warning while the public default key is accepted, else None: a `SECURITY:` line naming
        the (host, port) addresses in `listening` that are beyond loopback, if any."""
        if not self.uses_default_key:
            return None
        exposed = [_address(host, port) for host, port in listening if not is_loopback(host)]
        if not exposed:
            return f"API_KEY is the public default '{DEFAULT_API_KEY}'; set your own key"
        return (f"SECURITY: API_KEY is the public default '{DEFAULT_API_KEY}' and ki2api listens on "
                f"{', '.join(exposed)}, beyond loopback: anyone who can reach this port can spend your Kiro quota. "
                "Set API_KEY to a secret of your own (README, Security), or listen on 127.0.0.1 only "
                "(HOST=127.0.0.1, or gunicorn -b 127.0.0.1:PORT).")

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
            port=env_int(environ, "PORT", 8989, minimum=1),
            api_keys=keys,
            token_file=os.path.expanduser(token_file),
            access_token=_optional(environ, "KIRO_ACCESS_TOKEN"),
            refresh_token=_optional(environ, "KIRO_REFRESH_TOKEN"),
            api_base=_url(environ, "KIRO_API_BASE", cls.api_base),
            refresh_url=_url(environ, "KIRO_REFRESH_URL", cls.refresh_url),
            oidc_url=_url(environ, "KIRO_OIDC_URL", cls.oidc_url),
            profile_arn=_optional(environ, "KIRO_PROFILE_ARN"),
            state_dir=os.path.expanduser(state_dir),
            workers=env_int(environ, "WEB_CONCURRENCY", 1, minimum=1),
            connect_timeout=_float(environ, "UPSTREAM_CONNECT_TIMEOUT", 10.0),
            read_timeout=_float(environ, "UPSTREAM_READ_TIMEOUT", 300.0),
            refresh_margin=_float(environ, "TOKEN_REFRESH_MARGIN", 300.0),
            refresh_timeout=_float(environ, "TOKEN_REFRESH_TIMEOUT", 30.0),
            max_body_bytes=env_int(environ, "MAX_BODY_BYTES", 20 * 1024 * 1024, minimum=1024),
            log_level=level,
            token_dir=_optional(environ, "KIRO_TOKEN_DIR"),
            accounts_file=_optional(environ, "KIRO_ACCOUNTS_FILE"),
            redis_url=_redis_url(environ),
            redis_prefix=environ.get("KI2API_REDIS_PREFIX", "").strip() or "ki2api",
            usage_interval=_seconds_or_off(environ, "KIRO_USAGE_INTERVAL", 900.0),
            cooldown_base=_float(environ, "KIRO_COOLDOWN_BASE", 5.0),
            cooldown_max=_float(environ, "KIRO_COOLDOWN_MAX", 300.0),
            quota_cooldown=_float(environ, "KIRO_QUOTA_COOLDOWN", 3600.0),
            ping_interval=_float(environ, "SSE_PING_INTERVAL", 10.0),
            max_messages=env_int(environ, "MAX_MESSAGES", 10_000, minimum=1),
            max_tools=env_int(environ, "MAX_TOOLS", 500, minimum=0),
            max_image_bytes=env_int(environ, "MAX_IMAGE_BYTES", 5 * 1024 * 1024, minimum=1),
            body_read_timeout=_float(environ, "BODY_READ_TIMEOUT", 60.0),
            cors_origins=_origins(environ.get("CORS_ORIGINS", "")),
            auth_fail_limit=env_int(environ, "AUTH_FAIL_LIMIT", 0, minimum=0),
            auth_fail_window=_float(environ, "AUTH_FAIL_WINDOW", 300.0),
            debug_endpoints=environ.get("KI2API_DEBUG_ENDPOINTS", "").strip() == "1",
            log_format=_choice(environ, "LOG_FORMAT", "logfmt", ("logfmt", "json")),
            trusted_proxies=env_int(environ, "TRUSTED_PROXIES", 0, minimum=0),
            metrics_public=_flag(environ, "METRICS_PUBLIC"),
        )
