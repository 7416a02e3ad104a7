"""What each account spends: the credits Kiro charged for each answer, and its usage limits as last fetched.

Charges (Kiro's meteringEvent) are counted pool-wide as `credits_micro`, in millionths; status.py subtracts
them from the remaining credits of the last fetch (credits.py polls getUsageLimits). A fetch that shows
credits again, or a new reset date, ends or moves a quota rest.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from .roster import Account, Roster

log = logging.getLogger(__name__)


class Spending(Roster):
    """The pool's credit counter and usage limits."""

    def spent(self, account: Account, credits: float) -> None:
        """Count credits Kiro charged the account, in millionths (status.py subtracts them from its remaining)."""
        micro = round(credits * 1_000_000)
        if micro > 0:
            self._count(account.name, "credits_micro", micro)

    def record_usage(self, account: Account, usage: dict[str, Any]) -> None:
        """Keep fetched usage limits; end or stretch a quota rest by what they say."""
        self.write(account.name, "usage", usage)
        cooldown, now = self.states().get(account.name, {}).get("cooldown") or {}, time.time()
        if cooldown.get("kind") != "quota" or float(cooldown.get("until", 0)) <= now:
            return
        reset = usage.get("next_reset_epoch")
        if usage.get("remaining", 0) >= 1:
            log.info("Kiro account %s has credits again; ending its quota rest", account.name)
            self.write(account.name, "cooldown", None)
        elif reset and reset > now and abs(float(cooldown["until"]) - reset) > 1:
            self.write(account.name, "cooldown", {**cooldown, "until": reset})
