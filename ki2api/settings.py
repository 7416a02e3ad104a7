"""Typed configuration read from the environment (or `.env`, loaded by wsgi.py), each variable declared once.

Every field of Settings is declared with `setting(...)`: its variable, default, parser, meaning and group. From
that one declaration `Settings.from_env` reads the environment, config/gunicorn.conf.py reads gunicorn's
settings, and settings_docs.py renders docs/configuration.md.

Standard library only: gunicorn's master reads its settings through this module (config/gunicorn.conf.py)
before it forks the workers, and must not load flask or requests before gevent patches those.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping

from . import variables as v
from .variables import ConfigError, Parser

DEFAULT_API_KEY = "ki2api-key-2024"
DEFAULT_TOKEN_FILE = "~/.aws/sso/cache/kiro-auth-token.json"
DEFAULT_STATE_DIR = "~/.cache/ki2api"
# Set by gunicorn's master once it has warned about the default key for its real listeners, so that the
# workers (which inherit it) do not repeat the warning about HOST.
KEY_WARNED_ENV = "KI2API_DEFAULT_KEY_WARNED"

SERVER, KEYS, KIRO, ACCOUNTS, UPSTREAM, LIMITS, OBSERVE, GUNICORN = (
    "Server", "Client keys and browsers", "Kiro login", "Several accounts and replicas", "Calls to Kiro",
    "Request limits", "Logs and metrics", "gunicorn")


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, parser, meaning, group, and the default as the docs show it."""

    env: str
    default: Any
    parse: Parser | None
    doc: str
    group: str
    shown: str | None = None
    deprecated: tuple[str, ...] = ()  # former names, still read while `env` is unset


def setting(env: str, default: Any, parse: Parser, doc: str, group: str, shown: str | None = None,
            deprecated: tuple[str, ...] = ()) -> Any:
    """A Settings field read from the variable `env` (else from a `deprecated` former name) by `parse`; `shown`
    replaces the default in the docs."""
    return field(default=default, metadata={"setting": Setting(env, default, parse, doc, group, shown, deprecated)})


# Variables read elsewhere than Settings (the metrics directory, the dotenv file, Docker Compose): documented here.
OTHER_VARIABLES = (
    Setting("PROMETHEUS_MULTIPROC_DIR", None, None,
            "where the workers write their metrics; set by gunicorn's master at each start, emptied at start, "
            "removed at exit; set it yourself to choose the place (its `*.db` files are deleted at start)",
            OBSERVE, "a fresh `KI2API_STATE_DIR/prometheus-<pid>`"),
    Setting("KI2API_DOTENV", None, None, "which dotenv file to read (the tests point it at `/dev/null`)", SERVER,
            "`.env`"),
    Setting("PUID, PGID, KIRO_SSO_DIR", None, None,
            "`docker compose` only: the uid/gid the container runs as, and the host folder mounted as its token "
            "folder", SERVER, "`10001`, `10001`, `$HOME` (or `%USERPROFILE%`) + `/.aws/sso/cache`"),
)


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
    """Everything ki2api can be told, each field declared with its variable (docs/configuration.md)."""

    host: str = setting("HOST", "0.0.0.0", v.text, "listening address", SERVER)
    port: int = setting("PORT", 8989, v.integer(1), "listening port", SERVER)
    workers: int = setting("WEB_CONCURRENCY", 1, v.integer(1), "gunicorn worker processes", SERVER)
    api_keys: tuple[str, ...] = setting(
        "API_KEY", (DEFAULT_API_KEY,), v.keys,
        "client keys, comma-separated; the default makes the server warn at start-up", KEYS)
    cors_origins: tuple[str, ...] = setting(
        "CORS_ORIGINS", (), v.origins,
        "origins allowed to call ki2api from a browser, comma-separated (`https://app.example.com,"
        "http://localhost:3000`), or `*`", KEYS, "unset: CORS off")
    auth_fail_limit: int = setting(
        "AUTH_FAIL_LIMIT", 20, v.integer(0),
        "after this many requests with a wrong or missing key from one address within `AUTH_FAIL_WINDOW`, on any "
        "path that checks the key, that address gets 429 on every path but those that need no key until the "
        "oldest failure leaves the window; 0 turns the limit off", KEYS)
    auth_fail_window: float = setting("AUTH_FAIL_WINDOW", 300.0, v.positive,
                                      "seconds over which failed keys are counted (`AUTH_FAIL_LIMIT`)", KEYS)
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES", 0, v.integer(0),
        "how many reverse proxies (nginx) stand in front; with 1, the client address is taken from the last "
        "`X-Forwarded-For` entry and the scheme from `X-Forwarded-Proto`; 0 trusts no such header", KEYS)
    token_file: str = setting("KIRO_TOKEN_FILE", os.path.expanduser(DEFAULT_TOKEN_FILE), v.path,
                              "the Kiro IDE's token file (social or IdC/Builder ID login)", KIRO,
                              f"`{DEFAULT_TOKEN_FILE}`")
    access_token: str | None = setting("KIRO_ACCESS_TOKEN", None, v.optional,
                                       "an access token given directly; overrides the file", KIRO)
    refresh_token: str | None = setting("KIRO_REFRESH_TOKEN", None, v.optional,
                                        "a refresh token given directly; overrides the file", KIRO)
    profile_arn: str | None = setting("KIRO_PROFILE_ARN", None, v.optional,
                                      "overrides the credential's `profileArn`", KIRO, "from the credential")
    machine_id: str | None = setting(
        "KIRO_MACHINE_ID", None, v.machine_id,
        "the machine id (64 hex) the single `KIRO_TOKEN_FILE` login shows Kiro, e.g. your own IDE's; accounts "
        "of `KIRO_ACCOUNTS_FILE` take `machine_id` there", KIRO,
        "a random one, created once and kept in `KI2API_STATE_DIR` (or Redis)")
    refresh_url: str = setting("KIRO_REFRESH_URL", "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken",
                               v.url, "refresh endpoint for social (Google/GitHub) logins", KIRO)
    oidc_url: str = setting("KIRO_OIDC_URL", "https://oidc.us-east-1.amazonaws.com/token", v.url,
                            "refresh endpoint for IdC / Builder ID logins", KIRO)
    refresh_margin: float = setting("TOKEN_REFRESH_MARGIN", 300.0, v.positive,
                                    "refresh this many seconds before expiry", KIRO)
    refresh_timeout: float = setting("TOKEN_REFRESH_TIMEOUT", 30.0, v.positive,
                                     "seconds allowed for one refresh call", KIRO)
    state_dir: str = setting(
        "KI2API_STATE_DIR", os.path.expanduser(DEFAULT_STATE_DIR), v.path,
        "what the worker processes of one machine share: lock files, account states (cooldowns, disabled logins, "
        "usage), counters, and refreshed tokens that could not be written to a token file (or came from the "
        "environment or the accounts file); with Redis, this machine's fallback view", ACCOUNTS,
        f"`{DEFAULT_STATE_DIR}`")
    token_dir: str | None = setting("KIRO_TOKEN_DIR", None, v.optional,
                                    "a directory of Kiro token files, one account each", ACCOUNTS)
    accounts_file: str | None = setting(
        "KIRO_ACCOUNTS_FILE", None, v.optional,
        "a JSON accounts file; with `KIRO_TOKEN_DIR` and this both unset, the single `KIRO_TOKEN_FILE` login is "
        "used", ACCOUNTS)
    redis_url: str | None = setting(
        "REDIS_URL", None, v.redis_url,
        "e.g. `redis://redis:6379/0`: share tokens, refresh locks, cooldowns and counters between replicas "
        "through Redis", ACCOUNTS)
    redis_prefix: str = setting("KI2API_REDIS_PREFIX", "ki2api", v.text,
                                "prefix of ki2api's Redis keys; give each deployment sharing one Redis its own",
                                ACCOUNTS)
    usage_interval: float = setting(
        "KIRO_USAGE_INTERVAL", 900.0, v.seconds_or_off,
        "seconds between fetches of each account's usage limits (remaining credits) in the background; `0` "
        "turns them off", ACCOUNTS)
    models_interval: float = setting(
        "KIRO_MODELS_INTERVAL", 3600.0, v.seconds_or_off,
        "seconds between fetches of each account's model list (Kiro's ListAvailableModels: the models it may use, "
        "their context windows) in the background, the first at start; `0` turns them off and serves the "
        "built-in table", ACCOUNTS)
    cooldown_base: float = setting(
        "KIRO_COOLDOWN_BASE", 5.0, v.positive,
        "seconds: first rest of a throttled account when Kiro sends no `Retry-After` (doubling, with jitter)",
        ACCOUNTS)
    cooldown_max: float = setting("KIRO_COOLDOWN_MAX", 300.0, v.positive,
                                  "seconds: longest rest of a throttled account", ACCOUNTS)
    quota_cooldown: float = setting(
        "KIRO_QUOTA_COOLDOWN", 3600.0, v.positive,
        "seconds an account whose monthly quota is used up rests when its reset date is not known", ACCOUNTS)
    suspension_hold: float = setting(
        "KIRO_SUSPENSION_HOLD", 86400.0, v.seconds_or_off,
        "seconds an account Kiro called suspended or locked (403 `TEMPORARILY_SUSPENDED`, 423) takes no traffic "
        "before one request tries it again; `0`: until a person clears it (`POST /dashboard/accounts/<name>/clear`"
        ")", ACCOUNTS)
    client_version: str = setting(
        "KIRO_CLIENT_VERSION", "0.11.107", v.version,
        "the Kiro IDE version ki2api names in every user agent it sends to Kiro (chat, usage, refresh)", UPSTREAM)
    api_base: str = setting("KIRO_API_BASE", "https://q.us-east-1.amazonaws.com", v.url,
                            "Kiro API base; ki2api posts to `{base}/generateAssistantResponse`", UPSTREAM)
    cache_points: str = setting(
        "KIRO_CACHE_POINTS", "auto", v.choice("auto", "off"),
        "`auto`: a client's prompt-cache breakpoints (Anthropic `cache_control`) go to Kiro as cache points, for "
        "the models whose list says they cache; a model Kiro answers \"Improperly formed request\" with them (and "
        "answers without) gets none for 6 h, learned by every worker and replica (docs/api.md, Prompt caching). "
        "`off`: none are ever sent", UPSTREAM)
    connect_timeout: float = setting("UPSTREAM_CONNECT_TIMEOUT", 10.0, v.positive,
                                     "seconds to connect to Kiro", UPSTREAM)
    read_timeout: float = setting("UPSTREAM_READ_TIMEOUT", 300.0, v.positive,
                                  "seconds: the longest silence tolerated between upstream bytes", UPSTREAM)
    web_search_timeout: float = setting(
        "WEB_SEARCH_TIMEOUT", 20.0, v.positive,
        "seconds a web search (Kiro's MCP `web_search`) may take in all before the request fails with 504", UPSTREAM)
    stream_keepalive: float = setting("STREAM_KEEPALIVE", 15.0, v.positive,
                                      "seconds: while Kiro is silent this long, a stream gets a keep-alive (a "
                                      "`: keep-alive` comment line on the OpenAI side, chat and Responses; a "
                                      "`ping` event on the Anthropic side), and an answer not streamed that takes "
                                      "longer gets a space before its JSON each interval (docs/reliability.md)",
                                      UPSTREAM, deprecated=("SSE_PING_INTERVAL",))
    max_body_bytes: int = setting("MAX_BODY_BYTES", 20 * 1024 * 1024, v.integer(1024),
                                  "largest request body (413 beyond)", LIMITS)
    max_messages: int = setting("MAX_MESSAGES", 10_000, v.integer(1),
                                "most messages in one request (400 `too_many_messages` beyond)", LIMITS)
    max_tools: int = setting("MAX_TOOLS", 500, v.integer(0),
                             "most tools in one request (400 `too_many_tools` beyond)", LIMITS)
    max_image_bytes: int = setting(
        "MAX_IMAGE_BYTES", 5 * 1024 * 1024, v.integer(1),
        "largest inline image, decoded (400 `image_too_large`, naming the image); above 5 MiB it changes "
        "nothing, since larger images are refused anyway", LIMITS)
    max_images: int = setting(
        "MAX_IMAGES", 20, v.integer(1),
        "most images sent to Kiro per request: more in the last user message is a 400 `too_many_images`; "
        "beyond it, the oldest images of the history become a text placeholder", LIMITS)
    image_history_turns: int = setting(
        "IMAGE_HISTORY_TURNS", 5, v.integer(1),
        "images are sent from this many latest user turns (the current message and tool results included); "
        "those of older turns become a text placeholder, so a long chat with screenshots stops growing", LIMITS)
    body_read_timeout: float = setting(
        "BODY_READ_TIMEOUT", 60.0, v.positive,
        "seconds a client gets to send its whole request body (408 `request_timeout` beyond)", LIMITS)
    responses_ttl: float = setting(
        "RESPONSES_TTL", 7 * 86400.0, v.positive,
        "seconds a stored Responses API response (`store: true`) is kept for `previous_response_id` and "
        "`GET /v1/responses/{id}`; older ones are gone (404)", LIMITS)
    responses_max_bytes: int = setting(
        "RESPONSES_MAX_BYTES", 256 * 1024 * 1024, v.integer(1024),
        "bytes all stored responses may take together (in `KI2API_STATE_DIR/responses/`, or in Redis with "
        "`REDIS_URL`); the oldest are dropped beyond it", LIMITS)
    log_level: str = setting("LOG_LEVEL", "INFO", v.level, "`DEBUG`, `INFO`, `WARNING`, `ERROR`", OBSERVE)
    log_format: str = setting("LOG_FORMAT", "logfmt", v.choice("logfmt", "json"),
                              "`logfmt` or `json`: every ki2api log line, including the one line per request",
                              OBSERVE)
    metrics_public: bool = setting(
        "METRICS_PUBLIC", False, v.flag,
        "`true`: `/metrics` answers without the API key (only if the port is not reachable from outside)",
        OBSERVE)
    debug_endpoints: bool = setting(
        "KI2API_DEBUG_ENDPOINTS", False, v.exactly_one,
        "tests only: `1` adds `/debug/runtime` (greenlet, socket and memory counts of a worker, behind the key); "
        "never set it in a deployment", OBSERVE, "unset")
    worker_connections: int = setting(
        "WORKER_CONNECTIONS", 4000, v.integer(1),
        "concurrent connections per gevent worker; also the size of each worker's pool of connections to Kiro",
        GUNICORN)
    gunicorn_timeout: int = setting("GUNICORN_TIMEOUT", 60, v.integer(0),
                                    "seconds before gunicorn restarts a worker that stopped answering its master "
                                    "(the gevent worker reports from its own greenlet: long streams are fine)",
                                    GUNICORN)
    graceful_timeout: int = setting(
        "GRACEFUL_TIMEOUT", 120, v.integer(0),
        "seconds open streams get to finish after SIGTERM (Docker's `stop_grace_period` must be longer)",
        GUNICORN)
    keepalive: int = setting("KEEPALIVE", 75, v.integer(0), "seconds an idle keep-alive connection is kept",
                             GUNICORN)
    header_timeout: float = setting(
        "REQUEST_HEADER_TIMEOUT", 5.0, v.seconds_or_off,
        "seconds a client gets to send a request's line and headers, from a new connection's opening or a "
        "later request's first byte (a kept-alive connection may idle `KEEPALIVE` before it), else the "
        "connection is closed: a slow client cannot hold a connection slot; `0`: gunicorn's own `KEEPALIVE` for "
        "the wait and the headers together (with `KEEPALIVE=0` gunicorn reads without a deadline)", GUNICORN)
    max_connections_per_address: int = setting(
        "MAX_CONNECTIONS_PER_ADDRESS", 256, v.integer(0),
        "open connections one client address may hold in each worker; beyond, a connection is answered 429 "
        "`too_many_connections` and closed; `0` turns the cap off. Not applied with `TRUSTED_PROXIES` above 0 "
        "(every connection comes from the proxy: limit there)", GUNICORN)
    gc_thresholds: tuple[int, int, int] | None = setting(
        "GC_THRESHOLDS", (10_000, 50, 100), v.gc_thresholds,
        "each worker's garbage collector (`gc.set_threshold`, the app built at start frozen out of "
        "collections), tuned so that full collections, which stop every open stream, come minutes apart under "
        "load (see performance.md); `python` leaves Python's own (700, 10, 10)", GUNICORN, "`10000,50,100`")

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
        values = {}
        for declared in fields(cls):
            spec: Setting = declared.metadata["setting"]
            name = _name_set(spec, environ)
            values[declared.name] = spec.parse(name, environ.get(name), spec.default)  # type: ignore[misc]
        return cls(**values)


def declared() -> list[Setting]:
    """Every variable ki2api reads, Settings' fields first, in the order they are declared."""
    return [f.metadata["setting"] for f in fields(Settings)] + list(OTHER_VARIABLES)


def _name_set(spec: Setting, environ: Mapping[str, str]) -> str:
    """The variable a setting is read from: its own name unless only a former name of it is set (not blank)."""
    return next((name for name in (spec.env, *spec.deprecated) if (environ.get(name) or "").strip()), spec.env)


def deprecated_in_use(environ: Mapping[str, str]) -> list[str]:
    """A warning for each former variable name set in `environ`, naming the variable to use instead."""
    warnings = []
    for spec in declared():
        for old in (name for name in spec.deprecated if (environ.get(name) or "").strip()):
            ignored = _name_set(spec, environ) != old
            warnings.append(f"{old} is deprecated: set {spec.env} instead"
                            + (f" ({old} is ignored: {spec.env} is set)" if ignored else ""))
    return warnings


if __name__ == "__main__":  # the former command: say where the page is rendered now
    raise SystemExit("docs/configuration.md is rendered by: python -m ki2api.settings_docs > docs/configuration.md")
