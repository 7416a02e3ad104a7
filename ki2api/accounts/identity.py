"""How one account presents itself to Kiro: its machine id, the 64 hex digits ending every Kiro user agent.

Each account has its own, random, created once by the first process that needs it and kept in the shared state
(files or Redis), so every worker and replica sends the same one and a restart keeps it; the accounts file's
`machine_id` (or KIRO_MACHINE_ID for the single login) replaces it. It is never derived from anything another
installation could share (a profileArn, a token file path), so no two accounts and no two installations look
like one machine to Kiro.
"""
from __future__ import annotations

import logging
import re
import secrets

from .files import StoreError
from .protocols import TokenShare

log = logging.getLogger(__name__)

MACHINE_ID = re.compile(r"[0-9a-f]{64}")


def new_machine_id() -> str:
    """A fresh random machine id: 64 lower-case hex digits, like the IDE's."""
    return secrets.token_hex(32)


def is_machine_id(value: object) -> bool:
    """True for 64 lower-case hex digits."""
    return isinstance(value, str) and MACHINE_ID.fullmatch(value) is not None


class MachineId:
    """One account's machine id for this process: the configured one, else the shared one (read once, cached)."""

    def __init__(self, name: str, share: TokenShare, configured: str | None = None) -> None:
        self.name = name
        self.share = share
        self.configured = configured
        self._value = configured

    def value(self) -> str:
        """The machine id; if the shared state cannot be read or written, one for this process only (warned)."""
        if self._value is None:
            try:
                self._value = self.share.machine_id(self.name)
            except (OSError, TimeoutError, StoreError) as exc:
                self._value = new_machine_id()
                log.warning("account %s: could not keep its machine id in the shared state (%s); this process "
                            "uses one of its own until it restarts", self.name, exc)
        return self._value

    def forget(self) -> None:
        """Read the shared id again at the next use (Redis has returned and may hold another replica's)."""
        self._value = self.configured

    @property
    def source(self) -> str:
        """Where the id comes from, for /health: `configured` or `state`."""
        return "configured" if self.configured else "state"
