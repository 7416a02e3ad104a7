"""Stored accounts (accounts/store.py) joining and leaving a running pool, in every worker, without a restart.

Each worker checks the store directory's stamp at most once per CHECK_EVERY seconds (one `stat`); when it
changed, it adds the accounts that appeared, drops the removed ones and applies enable/disable. Accounts from
the settings (token file, KIRO_TOKEN_DIR, KIRO_ACCOUNTS_FILE) are never touched.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import requests

from ..settings import Settings
from .config import DEFAULT_NAME
from .files import Stamp, StoreError
from .identity import MachineId
from .pool import AccountPool
from .protocols import SharedState
from .roster import Account
from .store import AccountStore, Stored
from .token_manager import TokenManager
from .token_store import TokenStore

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between two looks at the store directory, per worker


def stored_account(stored: Stored, settings: Settings, session: requests.Session, shared: SharedState,
                   on_refresh: Callable[[bool, str | None], None] | None = None) -> Account:
    """A pool account for one stored account: its credential read like an inline accounts-file entry."""
    store = TokenStore("", settings.state_dir, None, None, share=shared, name=stored.name,
                       accounts_file=str(stored.path))
    tokens = TokenManager(settings, session, store, on_refresh, MachineId(stored.name, shared, None))
    entry = stored.entry
    return Account(stored.name, float(entry.get("weight", 1)), stored.enabled, tokens,
                   max_concurrency=entry.get("max_concurrency"), rpm=entry.get("rpm"))


class StoreSync:
    """Keeps a pool's stored accounts in step with the account store."""

    def __init__(self, pool: AccountPool, settings: Settings, session: requests.Session,
                 on_refresh: Callable[[bool, str | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.settings = settings
        self.session = session
        self.on_refresh = on_refresh
        self.store = AccountStore(settings.state_dir)
        self._clock = clock
        self._checked_at = float("-inf")
        self._stamp: Stamp = None
        self.names: set[str] = set()  # the pool's accounts that came from the store
        self._parked: Account | None = None  # the empty zero-configuration account, while stored ones serve

    def check(self) -> None:
        """Apply the store's changes if its directory changed since the last look (cheap; call per request)."""
        now = self._clock()
        if now - self._checked_at < CHECK_EVERY:
            return
        self._checked_at = now
        stamp = self.store.stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self.sync()

    def sync(self) -> None:
        """Make the pool's stored accounts what the store holds now."""
        try:
            stored = {s.name: s for s in self.store.accounts()}
        except StoreError as exc:
            log.warning("account store: %s; keeping the accounts as they were", exc)
            return
        configured = {a.name for a in self.pool.accounts} - self.names
        accounts = []
        for account in self.pool.accounts:
            if stored and account.name == DEFAULT_NAME and self._placeholder():
                log.info("the zero-configuration account (no token file at %s) leaves the pool: the account "
                         "store has accounts", self.settings.token_file)
                configured.discard(DEFAULT_NAME)
                self._parked = account
                continue
            if account.name in self.names and account.name not in stored:
                log.info("account %s was removed from the account store", account.name)
                continue
            if account.name in stored and account.name in self.names:
                account.enabled = stored[account.name].enabled
            accounts.append(account)
        for name, item in stored.items():
            if name in configured:
                log.warning("stored account %s has the name of a configured account; ignored", name)
            elif name not in self.names:
                accounts.append(stored_account(item, self.settings, self.session, self.pool.shared, self.on_refresh))
                log.info("account %s joined the pool from the account store (%s)", name, item.via or "stored")
        if not accounts and self._parked is not None:  # the store emptied: back to the zero-configuration login
            accounts, self._parked = [self._parked], None
        self.names = {name for name in stored if name not in configured}
        self.pool.accounts = accounts  # one assignment: a request picking meanwhile sees the old or the new list

    def _placeholder(self) -> bool:
        """True if the pool's default account is the zero-configuration one with nothing behind it."""
        s = self.settings
        return not (s.access_token or s.refresh_token or s.accounts_file or s.token_dir
                    or Path(s.token_file).expanduser().exists())
