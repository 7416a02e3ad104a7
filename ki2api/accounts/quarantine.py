"""Quarantine: an account Kiro suspended takes no traffic at all until a person clears it or its hold passes.

A "suspended" refusal (cooldown.py) quarantines the account instead of resting it, since retrying a suspended
account makes things worse. The hold is the CooldownPolicy's `suspension_hold` (0: until a person clears it,
POST /dashboard/accounts/<name>/clear). Once the hold has passed the account may serve again, and the first
request Kiro serves on it ends the quarantine in the shared state.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Mapping

from ..errors import ApiError
from .cooldown import iso
from .roster import Account, Roster

log = logging.getLogger(__name__)

SUSPENDED = "suspended"  # the refusal kind that quarantines (cooldown.KINDS)


def held(fields: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """The account's quarantine while it holds (no end, or its end still ahead); else None."""
    quarantine = fields.get("quarantine")
    if quarantine and (quarantine.get("until") is None or float(quarantine["until"]) > now):
        return quarantine
    return None


class Quarantines(Roster):
    """The pool's quarantines: put an account in, let a person clear it, end it once its hold passed."""

    def quarantine(self, account: Account, error: ApiError) -> None:
        """Take an account Kiro suspended out of service: no traffic until a person clears it or the hold passes."""
        self.note_error(account, SUSPENDED, error)
        now = time.time()
        if held(self.states(fresh=True).get(account.name, {}), now):
            return  # another request or worker got there first: one warning is enough
        until = self.policy.quarantine_until(now)
        self.write(account.name, "quarantine", {"at": now, "until": until, "why": error.message[:300]})
        log.warning("Kiro account %s is SUSPENDED by Kiro (%s). It is quarantined and takes no traffic %s; "
                    "retrying a suspended account makes things worse. Clear it with POST /dashboard/accounts/%s/clear "
                    "once Kiro has restored it.", account.name, error.message,
                    f"until {iso(until)}" if until else "until a person clears it", account.name)

    def clear(self, name: str) -> bool:
        """A person cleared an account: end its quarantine and rest; False if there is no such account."""
        if not any(a.name == name for a in self.accounts):
            return False
        self.write(name, "quarantine", None)
        self.write(name, "cooldown", None)
        log.warning("Kiro account %s was cleared by a person: it takes traffic again", name)
        return True

    def end_passed(self, account: Account, fields: Mapping[str, Any], now: float) -> None:
        """Kiro served the account: end its quarantine if the hold has passed (one begun since stays)."""
        quarantine = fields.get("quarantine")
        if quarantine and quarantine.get("until") is not None and float(quarantine["until"]) <= now:
            # its hold passed and Kiro served it again (a request begun before the quarantine clears nothing)
            self.write(account.name, "quarantine", None)
            log.warning("Kiro account %s served a request again: its quarantine is over", account.name)
