"""A pool of fake Kiro accounts: token files on disk and the matching accounts in the fake Kiro's state."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.helpers.credentials import write_token_file

THROTTLED = {"status": 429, "json": {"__type": "com.amazon.kiro.runtimeservice#ThrottlingException",
                                     "message": "Too many requests, please wait before trying again.",
                                     "reason": "USER_REQUEST_RATE_EXCEEDED"}}
QUOTA = {"status": 402, "json": {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}}
CAPACITY = {"status": 429, "json": {"message": "Insufficient model capacity.", "reason": "INSUFFICIENT_MODEL_CAPACITY"}}


def access(name: str) -> str:
    """The access token the fake accepts for account `name` at the start."""
    return f"aoaAAAAApool-{name}-access"


def refresh(name: str) -> str:
    """The refresh token the fake accepts for account `name` at the start."""
    return f"aorAAAAApool-{name}-refresh"


def usage(limit: float, used: float, reset_in_days: float = 5.0) -> dict[str, Any]:
    """A getUsageLimits answer with one CREDIT breakdown resetting in `reset_in_days`."""
    reset = round(time.time() + reset_in_days * 86400)
    return {"nextDateReset": reset, "subscriptionInfo": {"subscriptionTitle": "KIRO PRO"},
            "usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": limit,
                                    "currentUsageWithPrecision": used, "nextDateReset": reset}]}


def fake_accounts(*names: str, **extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The fake's `accounts` state: each name with its tokens, plus extra keys per name (usage, default)."""
    return [{"name": n, "access_tokens": [access(n)], "refresh_token": refresh(n), **extra.get(n, {})}
            for n in names]


def write_token_dir(directory: Path, *names: str, expired: tuple[str, ...] = (),
                    dead: tuple[str, ...] = ()) -> Path:
    """One IDE token file per account; `expired` ones need a refresh, `dead` ones have a refresh token the
    fake does not know (and an expired access token)."""
    for name in names:
        write_token_file(directory / f"{name}.json", access=access(name),
                         refresh=f"aorAAAAAdead-{name}" if name in dead else refresh(name),
                         expires_in=-60 if name in expired or name in dead else 3600)
    return directory
