"""The fake Kiro's mutable state: valid tokens, the script queue, counters and recorded requests.

All of it is touched from greenlets of one process only, between yields, so it needs no locks.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any

import gevent.event

from tests.fakes.kiro.cache import PromptCache
from tests.fakes.kiro.models import entries
from tests.fakes.kiro.script import SpecError

MAX_RECORDS = 2000  # benchmarks send many thousands of requests; keep only the newest
MAX_MALFORMED = 100
STATE_KEYS = ("access_tokens", "refresh_token", "rotate", "refresh_delay", "refresh_status", "refresh_body",
              "refresh_hold", "accounts", "models", "models_page", "models_status", "models_delay", "clock_skew",
              "cache_points")
DEFAULT_STATE: dict[str, Any] = {"access_tokens": [], "refresh_token": None, "rotate": True, "refresh_delay": 0.0,
                                 "refresh_status": None, "refresh_body": None, "refresh_hold": False, "accounts": [],
                                 "models": None, "models_page": None, "models_status": None,
                                 "models_delay": 0.0, "clock_skew": 0.0, "cache_points": "accept"}
ACCOUNT_KEYS = {"name", "access_tokens", "refresh_token", "usage", "default", "models"}
LEGACY = ""  # the account of the top-level access_tokens/refresh_token


class Account:
    """A named account besides the top-level one: its own tokens, refresh chain, usage and default."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.access_tokens: set[str] = set(config.get("access_tokens", []))
        self.refresh_tokens: set[str] = {config["refresh_token"]} if config.get("refresh_token") else set()
        self.refresh_token: str | None = config.get("refresh_token")
        self.usage: dict[str, Any] | None = config.get("usage")
        self.default: dict[str, Any] | None = config.get("default")
        self.models: list[dict[str, Any]] = entries(config.get("models"))  # ListAvailableModels; chat checks it
        self.chat_requests = self.refresh_calls = self.usage_calls = self.models_calls = 0

    def stats(self) -> dict[str, Any]:
        """This account's counters and current tokens."""
        return {"chat_requests": self.chat_requests, "refresh_calls": self.refresh_calls,
                "usage_calls": self.usage_calls, "models_calls": self.models_calls,
                "access_tokens": sorted(self.access_tokens),
                "refresh_token": self.refresh_token}


class State:
    """Everything the endpoints share; `reset` goes back to the start-up state overlaid with new values."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self.initial = {**DEFAULT_STATE, **_checked(initial or {})}
        self.gate = gevent.event.Event()
        self.open_streams = self.held = self.connections = 0  # live gauges: a reset leaves them alone
        self.refresh_held = 0
        self.reset({})

    def reset(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Clear scripts, counters and records, release held streams, then apply the start-up state + overrides."""
        config = {**self.initial, **_checked(overrides)}
        self.access_tokens: set[str] = set(config["access_tokens"])
        self.refresh_tokens: set[str] = {config["refresh_token"]} if config["refresh_token"] else set()
        self.refresh_token: str | None = config["refresh_token"]
        self.rotate: bool = bool(config["rotate"])
        self.refresh_delay: float = float(config["refresh_delay"] or 0.0)
        self.refresh_status: int | None = config["refresh_status"]
        self.refresh_body: str | None = config["refresh_body"]
        # refresh_hold: rotate the tokens, then hold the answer until /_control/release (a crash window test)
        self.refresh_hold: bool = bool(config["refresh_hold"])
        self.accounts: dict[str, Account] = {a["name"]: Account(a) for a in config["accounts"]}
        # The top-level account's model list; models_page: answer in pages this long; models_status: refuse
        # ListAvailableModels with this HTTP status (the service unreachable, as a test sees it); models_delay:
        # seconds before each ListAvailableModels answer.
        self.models: list[dict[str, Any]] = entries(config["models"])
        self.models_page: int | None = config["models_page"]
        self.models_status: int | None = config["models_status"]
        self.models_delay: float = float(config["models_delay"] or 0.0)
        # clock_skew: seconds the Date header of every answer is ahead of the real time (negative: behind)
        self.clock_skew: float = float(config["clock_skew"] or 0.0)
        # cache_points: "accept" (checked, and cached: cache.py) or "refuse" (any cache point is a malformed body)
        self.cache_points: str = config["cache_points"]
        self.prompt_cache = PromptCache()
        self.usage_calls = self.models_calls = 0
        self.issued = 0
        self.queue: deque[list[Any]] = deque()  # [spec, answers left]
        self.default: dict[str, Any] = {}
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)  # refresh and usage calls
        self.search_queue: deque[dict[str, Any]] = deque()  # scripted web search answers (websearch.py)
        self.searches: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)  # POST /mcp calls
        self.chat_requests = self.refresh_calls = self.oidc_calls = 0
        self.malformed: deque[str] = deque(maxlen=MAX_MALFORMED)  # why bodies were refused, newest last
        self.frames_sent = self.bytes_sent = 0
        self.last_frame_sent_at: float | None = None
        self.max_open_streams = self.streams_served = 0
        self.release()
        return self.stats()

    def next_spec(self, account: str = LEGACY) -> dict[str, Any]:
        """The spec answering this chat request: the first queued one for this account (a spec's optional
        "account" key; without it, any), else that account's default, else the default."""
        for entry in self.queue:
            if entry[0].get("account", account) == account:
                entry[1] -= 1
                if entry[1] <= 0:
                    self.queue.remove(entry)
                return entry[0]
        named = self.accounts.get(account)
        return named.default if named is not None and named.default is not None else self.default

    def account_of(self, access_token: str) -> str | None:
        """The account an access token belongs to ('' for the top-level one), or None if it is not valid."""
        if access_token in self.access_tokens:
            return LEGACY
        return next((a.name for a in self.accounts.values() if access_token in a.access_tokens), None)

    def set_default(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Set the default answer; only the named account's if the spec has an "account" key."""
        name = spec.get("account")
        if name is None:
            self.default = spec
        elif name in self.accounts:
            self.accounts[name].default = spec
        else:
            raise SpecError(f"no account {name!r}; known: {sorted(self.accounts)}")
        return {"default": spec}

    def queued(self) -> int:
        """How many chat requests the queue will still answer."""
        return sum(left for _, left in self.queue)

    def rotate_refresh(self, token: Any) -> tuple[str, str] | None:
        """Spend `token` and return a new (access, refresh) pair, or None if the token is unknown or spent."""
        named = next((a for a in self.accounts.values() if token in a.refresh_tokens), None)
        if named is not None:
            return self._rotate_named(named)
        if not isinstance(token, str) or token not in self.refresh_tokens:
            return None
        self.issued += 1
        access, refresh = f"aoaAAAAAfake-access-{self.issued}", f"aorAAAAAfake-refresh-{self.issued}"
        if self.rotate:
            self.access_tokens = {access}
            self.refresh_tokens = {refresh}
        else:
            self.access_tokens.add(access)
            self.refresh_tokens.add(refresh)
        self.refresh_token = refresh
        return access, refresh

    def _rotate_named(self, account: Account) -> tuple[str, str]:
        account.refresh_calls += 1
        self.issued += 1
        access = f"aoaAAAAAfake-{account.name}-access-{self.issued}"
        refresh = f"aorAAAAAfake-{account.name}-refresh-{self.issued}"
        if self.rotate:
            account.access_tokens, account.refresh_tokens = {access}, {refresh}
        else:
            account.access_tokens.add(access)
            account.refresh_tokens.add(refresh)
        account.refresh_token = refresh
        return access, refresh

    def release(self) -> int:
        """Let every stream held so far continue; later holds wait for the next release."""
        held, gate = self.held, self.gate
        self.gate = gevent.event.Event()
        gate.set()
        return held

    def note_call(self, request: Any, machine_id: str | None) -> None:
        """Record a refresh or usage call: time, method, path, headers (lower-case), the machine id it named."""
        self.calls.append({"time": time.time(), "method": request.method, "path": request.path,
                           "headers": request.headers, "machine_id": machine_id})

    def refused(self, reason: str) -> None:
        """Note a chat body refused as malformed, and why."""
        self.malformed.append(reason)

    def stream_opened(self) -> None:
        """Count a stream whose headers went out."""
        self.open_streams += 1
        self.streams_served += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)

    def stats(self) -> dict[str, Any]:
        """Counters and gauges for the control API."""
        return {"chat_requests": self.chat_requests, "refresh_calls": self.refresh_calls,
                "oidc_calls": self.oidc_calls, "open_streams": self.open_streams,
                "max_open_streams": self.max_open_streams, "streams_served": self.streams_served,
                "held_streams": self.held, "held_refreshes": self.refresh_held, "connections": self.connections,
                "frames_sent": self.frames_sent,
                "bytes_sent": self.bytes_sent, "last_frame_sent_at": self.last_frame_sent_at,
                "queued": self.queued(), "access_tokens": sorted(self.access_tokens),
                "refresh_token": self.refresh_token, "tokens_issued": self.issued, "usage_calls": self.usage_calls,
                "models_calls": self.models_calls, "malformed": list(self.malformed),
                "accounts": {name: account.stats() for name, account in self.accounts.items()}}


def _checked(state: dict[str, Any]) -> dict[str, Any]:
    unknown = set(state) - set(STATE_KEYS)
    if unknown:
        raise SpecError(f"unknown state keys {sorted(unknown)}; known: {list(STATE_KEYS)}")
    if state.get("cache_points", "accept") not in ("accept", "refuse"):
        raise SpecError("cache_points must be \"accept\" or \"refuse\"")
    if "access_tokens" in state and not isinstance(state["access_tokens"], list):
        raise SpecError("access_tokens must be a list")
    for account in state.get("accounts", []):
        if not isinstance(account, dict) or not isinstance(account.get("name"), str) \
                or set(account) - ACCOUNT_KEYS:
            raise SpecError(f"each account needs a name and only the keys {sorted(ACCOUNT_KEYS)}: {account!r}")
    return state
