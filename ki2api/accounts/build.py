"""The account pool assembled from settings: accounts, their token managers, the shared state and the policy.

Only the app factory imports this module; nothing in the accounts package does.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import requests

from ..settings import Settings
from .config import DEFAULT_NAME, account_specs
from .cooldown import CooldownPolicy
from .file_state import FileState
from .identity import MachineId
from .pool import AccountPool
from .protocols import SharedState
from .roster import Account
from .token_manager import TokenManager
from .token_store import TokenStore

if TYPE_CHECKING:
    from .redis_state import RedisState

log = logging.getLogger(__name__)


def build_pool(settings: Settings, session: requests.Session,
               on_refresh: Callable[[bool, str | None], None] | None = None) -> AccountPool:
    """The accounts, their token managers and the shared state (Redis if REDIS_URL is set, else files).

    `on_refresh` is told of every call to a refresh endpoint: (ok, account name).
    """
    redis_state: RedisState | None = None
    if settings.redis_url:
        # Imported only here: a gateway without REDIS_URL never loads redis-py into its workers.
        from .redis_state import RedisState

        redis_state = RedisState(settings.redis_url, settings.redis_prefix, settings.state_dir)
    shared: SharedState = redis_state if redis_state is not None else FileState(settings.state_dir)
    accounts = []
    for spec in account_specs(settings):
        if spec.name == DEFAULT_NAME and spec.token_file == settings.token_file:  # the zero-configuration login
            store = TokenStore(settings.token_file, settings.state_dir, settings.access_token, settings.refresh_token,
                               share=shared, name=spec.name)
            configured = settings.machine_id
        else:
            store = TokenStore(spec.token_file or "", settings.state_dir, None, None, share=shared, name=spec.name,
                               accounts_file=spec.accounts_file)
            configured = spec.machine_id
        tokens = TokenManager(settings, session, store, on_refresh, MachineId(spec.name, shared, configured))
        accounts.append(Account(spec.name, spec.weight, spec.enabled, tokens, max_concurrency=spec.max_concurrency,
                                rpm=spec.rpm))
    policy = CooldownPolicy(settings.cooldown_base, settings.cooldown_max, settings.quota_cooldown,
                            settings.suspension_hold)
    pool = AccountPool(accounts, shared, policy)
    if redis_state is not None:
        redis_state.on_return(pool.republish)
    log.info("serving from %d Kiro account(s) (%s); shared state: %s", len(accounts),
             ", ".join(a.name for a in accounts), shared.backend)
    return pool
