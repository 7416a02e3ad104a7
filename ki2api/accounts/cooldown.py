"""How long an account rests after Kiro refused it: Retry-After when given, the quota's reset date, else backoff.

Pure: no I/O, the clock and the random source are arguments.

Kinds of refusal that put an account on cooldown (and let a request fail over to another account):
- "throttled": HTTP 429 (ThrottlingException), or a throttle reported as a stream's first frame;
- "capacity": INSUFFICIENT_MODEL_CAPACITY (any status);
- "quota": HTTP 402 or MONTHLY_REQUEST_COUNT: the monthly credits are used up;
- "rejected": the access token is refused even after a refresh (401/403);
- "forbidden": a 403 that is not about the token nor a suspension.
A "suspended" refusal (403 TEMPORARILY_SUSPENDED or saying the account is locked, 423) is no rest but a
quarantine: `suspension_hold` seconds (0: until a person clears it), never shortened by a Retry-After.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

KINDS = ("throttled", "capacity", "quota", "rejected", "forbidden", "suspended")
DESCRIPTIONS = {"throttled": "throttled by Kiro", "capacity": "Kiro reported insufficient model capacity",
                "quota": "the monthly quota is used up", "rejected": "Kiro rejected its token after a refresh",
                "forbidden": "Kiro refused the account",
                "suspended": "Kiro suspended or locked the account"}
CAPACITY_CAP = 60.0  # capacity shortages are brief and not the account's fault: never rest long


@dataclass(frozen=True)
class CooldownPolicy:
    """base: the first backoff; cap: the longest; quota_default: a quota rest when no reset date is known;
    suspension_hold: a quarantine's length (0: until a person clears it)."""

    base: float = 5.0
    cap: float = 300.0
    quota_default: float = 3600.0
    suspension_hold: float = 86400.0

    def quarantine_until(self, now: float) -> float | None:
        """When a quarantine that starts now ends by itself; None if only a person ends it."""
        return now + self.suspension_hold if self.suspension_hold > 0 else None

    def until(self, kind: str, failures: int, retry_after: float | None, quota_reset: float | None,
              now: float, rng: random.Random) -> float:
        """When an account may serve again after the `failures`-th refusal in a row of this kind."""
        if retry_after is not None and retry_after > 0:
            return now + float(retry_after)
        if kind == "quota":
            return quota_reset if quota_reset is not None and quota_reset > now else now + self.quota_default
        cap = min(self.cap, CAPACITY_CAP) if kind == "capacity" else self.cap
        delay = min(cap, self.base * 2 ** max(0, failures - 1))
        return now + delay / 2 + rng.uniform(0, delay / 2)  # "equal jitter": replicas spread out, never under half


def describe(kind: str) -> str:
    """A few words for logs, /health and error messages."""
    return DESCRIPTIONS.get(kind, kind)


def iso(epoch: float) -> str:
    """An epoch time the way Kiro writes times: 2025-12-31T02:32:45.144Z."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
