"""Each account's remaining credits, from Kiro's getUsageLimits, fetched on a slow schedule in the background.

One poller per worker process, started at the first request (after gevent has patched `threading`, so its
thread is a greenlet). A shared claim lets only one worker of one replica fetch an account per interval;
the others read the result from the shared state. Requests never wait for it.

Between polls, the credits Kiro charged for each answer (meteringEvent, counted pool-wide by the pool as
`credits_micro`) are subtracted from the remaining figure (accounts/status.py): the usage keeps the counter's
value at its fetch (`credits_counted`), so every worker and replica shows the same lowered figure until the
next poll replaces it with Kiro's own.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Mapping

import requests

from ..settings import Settings
from .cooldown import iso
from .polling import AccountPoller, fetch_json
from .pool import AccountPool
from .roster import Account

log = logging.getLogger(__name__)

CHECK_EVERY = 60.0  # seconds between looks at which accounts are due
CLAIM_MAX = 300.0  # a failed fetch is retried (by anyone) after at most this long
FETCH_TIMEOUT = 30.0


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _epoch(value: Any) -> float | None:
    """nextDateReset as epoch seconds: numbers in seconds or milliseconds, or an ISO-8601 string."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value / 1000 if value >= 1e12 else float(value)
    if isinstance(value, str) and value.strip():
        try:
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def parse_usage(body: dict[str, Any], now: float) -> dict[str, Any]:
    """The credits part of a getUsageLimits answer: limit, used, remaining (trial and bonus credits included)."""
    items = [i for i in body.get("usageBreakdownList") or [] if isinstance(i, dict)]
    item = next((i for i in items if i.get("resourceType") in ("CREDIT", "AGENTIC_REQUEST")), items[0] if items else {})
    limit = _number(item.get("usageLimitWithPrecision", item.get("usageLimit")))
    used = _number(item.get("currentUsageWithPrecision", item.get("currentUsage")))
    trial = item.get("freeTrialInfo")
    extras = [trial] if isinstance(trial, dict) and trial.get("freeTrialStatus") == "ACTIVE" else []
    extras += [b for b in item.get("bonuses") or [] if isinstance(b, dict) and b.get("status") == "ACTIVE"]
    for extra in extras:
        limit += _number(extra.get("usageLimitWithPrecision", extra.get("usageLimit")))
        used += _number(extra.get("currentUsageWithPrecision", extra.get("currentUsage")))
    reset = _epoch(item.get("nextDateReset")) or _epoch(body.get("nextDateReset"))
    subscription = body.get("subscriptionInfo") if isinstance(body.get("subscriptionInfo"), dict) else {}
    return {"subscription": subscription.get("subscriptionTitle") or subscription.get("type"),
            "limit": round(limit, 4), "used": round(used, 4), "remaining": round(max(0.0, limit - used), 4),
            "next_reset": iso(reset) if reset else None, "next_reset_epoch": reset, "fetched_at": now}


class UsagePoller(AccountPoller):
    """Fetches every account's usage limits every `settings.usage_interval` seconds (0: never)."""

    thread_name = "kiro-usage-limits"
    check_every = CHECK_EVERY
    spread = True  # workers booted together do not fetch together

    def __init__(self, pool: AccountPool, settings: Settings, session: requests.Session) -> None:
        super().__init__(pool, settings, session, settings.usage_interval)

    def poll_once(self) -> int:
        """Fetch the accounts that are due and not claimed by another worker; return how many were fetched."""
        fetched = 0
        for account, _ in self.due("usage", self._is_due, min(self.interval, CLAIM_MAX)):
            counted = self.pool.counts().get(account.name, {}).get("credits_micro", 0)  # before: Kiro's figure
            result = self.fetch(account)  # may include charges counted just before it, never miss one
            if result is not None:
                self.pool.record_usage(account, {**result, "credits_counted": counted})
                fetched += 1
        return fetched

    def fetch(self, account: Account) -> dict[str, Any] | None:
        """One getUsageLimits call with the account's credential (refreshed once if rejected); None on failure."""
        usage, error = self.fetch_or_why(account)
        if usage is None:
            log.info("no usage limits for Kiro account %s: %s", account.name, error)
        return usage

    def fetch_or_why(self, account: Account) -> tuple[dict[str, Any] | None, str | None]:
        """(the parsed usage, None) or (None, why not): fetch's answer with its reason (doctor shows it)."""
        body, why = fetch_json(account, lambda credential: self.get(account, credential, "getUsageLimits",
                                                                    {"resourceType": "AGENTIC_REQUEST"}, FETCH_TIMEOUT))
        return (parse_usage(body, time.time()), None) if body is not None else (None, why)

    def _is_due(self, fields: Mapping[str, Any], now: float) -> bool:
        return now - float((fields.get("usage") or {}).get("fetched_at", 0)) >= self.interval
