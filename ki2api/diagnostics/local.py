"""The checks that need no network: configuration, each account's token source, the shared state and the port;
and /health's warnings, from what ki2api already knows (never a network call per /health request)."""
from __future__ import annotations

import errno
import os
import socket
import tempfile
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Mapping

import requests

from ..accounts.files import StoreError
from ..accounts.roster import Account
from ..accounts.protocols import SharedState
from ..settings import Settings
from ..variables import ConfigError
from .check import Check, failed, passed

MAX_SKEW = 60.0  # seconds this clock may differ from Kiro's before a check (and /health) says so
PORT_TIMEOUT = 3.0
_RELOGIN = {"file": "log in to Kiro IDE again (it rewrites the token file), or point KIRO_TOKEN_FILE at the right "
                    "file",
            "env": "set KIRO_ACCESS_TOKEN/KIRO_REFRESH_TOKEN to a current login",
            "accounts": "put a current login (refreshToken, or tokenFile) into this account's entry of the accounts "
                        "file"}


def configuration(environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """Every setting parses (Settings.from_env); the ConfigError names the variable if not."""
    try:
        settings = Settings.from_env(environ)
    except ConfigError as exc:
        return failed("config", None, str(exc), "correct that variable in the environment or .env "
                      "(docs/configuration.md lists every setting)"), None
    return passed("config", None, "every setting parses"), settings


def relogin(source: str) -> str:
    """What to do about a login that is missing or dead, by where it comes from."""
    return _RELOGIN.get(source, _RELOGIN["file"])


def token_source(account: Account) -> Check:
    """The account's credential can be read and has what a call needs; never shows a token."""
    store = account.tokens.store
    where = store.where or "KIRO_ACCESS_TOKEN/KIRO_REFRESH_TOKEN"
    try:
        credential = store.load().credential
    except (StoreError, OSError) as exc:
        return failed("token", account.name, f"cannot read the login in {where}: {exc}", relogin(store.source))
    if not credential.access_token and not credential.refresh_token:
        return failed("token", account.name, f"{where} holds neither an accessToken nor a refreshToken",
                      relogin(store.source))
    if credential.refresh_token is None and credential.expires_within(0):
        return failed("token", account.name, f"the access token in {where} has expired and there is no refresh "
                      "token to renew it", relogin(store.source))
    if credential.auth_method == "idc" and credential.refresh_token and not (credential.client_id
                                                                             and credential.client_secret):
        return failed("token", account.name, f"the IdC login in {where} has no client registration (clientId and "
                      "clientSecret inline, or the <clientIdHash>.json beside it)", relogin(store.source))
    dead = store.dead_reason(credential)
    if dead:
        return failed("token", account.name, f"the refresh token was rejected before: {dead}", relogin(store.source))
    expiry = "no expiry given"
    if credential.expires_at is not None:
        left = (credential.expires_at - datetime.now(timezone.utc)).total_seconds()
        expiry = f"access token expires in {_duration(left)}" if left > 0 else "access token expired"
    return passed("token", account.name, f"{credential.auth_method} login from {where} ({expiry})")


def skew(date_header: str | None, at: float) -> float | None:
    """Kiro's clock minus ours, in seconds, from an answer's Date header received at `at` (None if unreadable)."""
    if not date_header:
        return None
    try:
        moment = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() - at


def describe_skew(seconds: float) -> str:
    """`this clock is 2 min 5 s behind Kiro's` or `... ahead of ...`."""
    return f"this clock is {_duration(abs(seconds))} {'behind' if seconds > 0 else 'ahead of'} Kiro's"


def describe_left(moment: datetime) -> str:
    """How long until `moment`, in words (`52 min`), or `no time` if it has passed."""
    left = (moment - datetime.now(timezone.utc)).total_seconds()
    return _duration(left) if left > 0 else "no time"


def shared_state(shared: SharedState, settings: Settings) -> Check:
    """The shared state answers and takes a write: the state directory, or Redis (and its local fallback)."""
    status = shared.status()
    if status.get("backend") == "redis":
        if not status.get("connected"):
            return failed("shared_state", "redis", f"Redis at {status.get('url')} does not answer "
                          f"({status.get('error')})", "start Redis or correct REDIS_URL; meanwhile each replica "
                          "serves from its own copy, and a rotating refresh token may be spent twice")
        try:
            wrote = shared.claim(f"doctor-{os.getpid()}-{time.monotonic_ns()}", 1.0)
        except Exception as exc:  # any refusal of the write (read-only replica, ACL) is what we report
            return failed("shared_state", "redis", f"Redis at {status.get('url')} refused a write: {exc}",
                          "give ki2api's Redis user write access, or point REDIS_URL at the primary")
        if not wrote:
            return failed("shared_state", "redis", "Redis took no write", "check REDIS_URL and REDIS_PREFIX")
    problem = _unwritable(Path(settings.state_dir))
    if problem:
        return failed("shared_state", "files", f"the state directory {settings.state_dir} is not writable: "
                      f"{problem}", "make KI2API_STATE_DIR a directory ki2api's user may write (in Docker, the "
                      "state volume), or point it elsewhere")
    if status.get("backend") == "redis":
        return passed("shared_state", "redis", f"Redis at {status.get('url')} answers and takes writes; the local "
                      f"fallback {settings.state_dir} is writable")
    return passed("shared_state", "files", f"{settings.state_dir} is writable")


def _unwritable(directory: Path) -> str | None:
    """Why a file cannot be created in `directory` (created if missing, as ki2api would), or None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-", suffix=".tmp"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def port(settings: Settings) -> Check:
    """HOST:PORT is free for ki2api, or ki2api already answers there."""
    where = f"{settings.host}:{settings.port}"
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            sock.bind((settings.host.strip("[]"), settings.port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return failed("port", where, f"cannot listen on {where}: {exc.strerror}",
                          "set HOST to an address of this machine (0.0.0.0 for all) and PORT to a port above 1023")
        return _answering(settings, where)
    return passed("port", where, f"{where} is free for ki2api")


def _answering(settings: Settings, where: str) -> Check:
    """The port is taken: by ki2api (its /health answers), or by another program."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/health"
    session = requests.Session()
    session.trust_env = False  # our own port: never through a proxy
    try:
        body = session.get(url, timeout=PORT_TIMEOUT).json()
    except (requests.RequestException, ValueError):
        body = None
    finally:
        session.close()
    if isinstance(body, dict) and "pool" in body and "accounts" in body:
        return passed("port", where, f"ki2api answers on {where} (its /health says {body.get('status')})")
    return failed("port", where, f"another program holds {where} (it does not answer as ki2api)",
                  "stop that program, or set PORT to a free port")


def health_warnings(rows: list[dict[str, Any]], settings: Settings, last_answer: tuple[str | None, float] | None
                    ) -> list[str]:
    """/health's share of doctor's cheap checks: unreadable token sources (from the rows /health already has),
    the clock against Kiro's last Date header, an unwritable state directory. No network, no file write."""
    warnings = [f"the login of Kiro account {row['name']} cannot be read ({row['credential']['error']}): run "
                "`python -m ki2api doctor`" for row in rows
                if not row["credential"]["loaded"] and row["credential"]["error"]]
    offset = skew(*last_answer) if last_answer else None
    if offset is not None and abs(offset) > MAX_SKEW:
        warnings.append(f"{describe_skew(offset)} (from its last answer's Date header): set the time right "
                        "(NTP), or token expiry is judged wrong")
    directory = Path(settings.state_dir)
    existing = directory if directory.exists() else next((p for p in directory.parents if p.exists()), directory)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        warnings.append(f"the state directory {settings.state_dir} is not writable: refreshed tokens, cooldowns "
                        "and counters are not shared between workers (make KI2API_STATE_DIR writable)")
    return warnings


def _duration(seconds: float) -> str:
    if seconds < 119.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


