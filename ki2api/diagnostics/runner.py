"""Every check in doctor's order, over the services a worker would build (app.Services)."""
from __future__ import annotations

from typing import Protocol

import requests

from ..accounts.catalog import ModelCatalog
from ..accounts.credits import UsagePoller
from ..accounts.files import StoreError
from ..accounts.pool import AccountPool
from ..accounts.roster import Account
from ..accounts.refresh import refresh_request
from ..settings import Settings
from . import local, remote
from .check import Check, skipped


class Services(Protocol):
    """What the checks need of app.Services (the client's session is the one every upstream call shares)."""

    settings: Settings
    pool: AccountPool
    usage: UsagePoller
    catalog: ModelCatalog


def run_checks(services: Services, session: requests.Session, force_refresh: bool = False,
               chat: bool = False) -> list[Check]:
    """Token sources, clock, network, refresh, models and credits (and a chat), shared state, port; in order.

    The configuration check comes before (the services cannot be built without it)."""
    settings, pool = services.settings, services.pool
    tokens = [local.token_source(account) for account in pool.accounts]
    usable = [a for a, check in zip(pool.accounts, tokens) if check.ok and a.enabled]
    probes = {url: remote.probe(session, url, settings.connect_timeout) for url in endpoints(settings, pool)}
    checks = tokens + [remote.clock(probes[settings.api_base])] + [remote.network(p) for p in probes.values()]
    listed: dict[str, list[str]] = {}
    for account in pool.accounts:
        if account not in usable:
            why = "disabled in the accounts file" if account.enabled is False else "the login cannot be used " \
                  "(see the token check)"
            checks += [skipped(name, account.name, f"not tried: {why}") for name in ("refresh", "models", "credits")]
            continue
        checks.append(remote.refresh(account, settings, force_refresh))
        found, listed[account.name] = remote.models(account, services.catalog)
        checks += [found, remote.credits(account, services.usage)]
    for account in pool.accounts:
        if not chat:
            checks.append(skipped("chat", account.name, "not tried (--chat sends a one-word test chat)"))
        elif account in usable:
            checks.append(remote.chat(account, settings, session, listed.get(account.name, [])))
        else:
            checks.append(skipped("chat", account.name, "not tried: the account cannot be used"))
    return checks + [local.shared_state(pool.shared, settings), local.port(settings)]


def endpoints(settings: Settings, pool: AccountPool) -> list[str]:
    """KIRO_API_BASE, then the refresh endpoint of each readable login (both refresh endpoints if none is)."""
    found = [settings.api_base]
    for account in pool.accounts:
        url = _refresh_url(account, settings)
        if url and url not in found:
            found.append(url)
    if len(found) == 1:
        found += [settings.refresh_url, settings.oidc_url]
    return found


def _refresh_url(account: Account, settings: Settings) -> str | None:
    try:
        credential = account.tokens.store.load().credential
    except (StoreError, OSError):  # unreadable logins are the token check's to report
        return None
    return refresh_request(credential, settings, "0" * 64)[0] if credential.refresh_token else None
