"""Each account's models, from Kiro's ListAvailableModels, fetched at start and then on a slow schedule.

One fetcher per worker process, started at the worker's first request (after gevent has patched
`threading`, so its thread is a greenlet); its first round runs at once. A shared claim lets only one worker
of one replica fetch an account per round; every worker reads the lists from the shared state (field
"models", entitlement.py), so all of them route and list alike. Requests never wait for a fetch: until a
list is in, or when none can be had, the built-in table (the captured answer) serves, and /health says so;
only a name the built-in table does not know waits for the worker's first round (at most FIRST_WAIT).

The call is the IDE's: `GET {KIRO_API_BASE}/ListAvailableModels?origin=AI_EDITOR&maxResults=50
[&profileArn=...][&nextToken=...]`, with the account's credential (refreshed once if rejected), following
`nextToken` while the answer has one.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import requests

from ..models import BUILTIN, ModelInfo
from ..settings import Settings
from .cooldown import iso
from .entitlement import ListCache, listed_ids, refused_ids
from .polling import AccountPoller, fetch_json
from .pool import AccountPool
from .roster import Account

log = logging.getLogger(__name__)

CHECK_EVERY = 30.0  # seconds between looks at which accounts are due
RETRY_FAILED = 60.0  # a failed fetch is retried (by anyone) after this long
FETCH_TIMEOUT = 30.0
PAGE_SIZE = 50  # the IDE's maxResults
MAX_PAGES = 20  # a nextToken that never ends is the service's bug, not a reason to loop forever
FIRST_WAIT = 10.0  # seconds a request for a name unknown at start waits for the worker's first round


@dataclass(frozen=True)
class CatalogView:
    """The models ki2api serves now: the union of the accounts' lists, or the built-in table and why."""

    models: dict[str, ModelInfo]
    source: str  # service | builtin
    why: str | None = None
    warnings: list[str] = field(default_factory=list)


class ModelCatalog(AccountPoller):
    """Fetches every account's model list every `settings.models_interval` seconds (0: never) and joins them."""

    thread_name = "kiro-model-lists"
    check_every = CHECK_EVERY

    def __init__(self, pool: AccountPool, settings: Settings, session: requests.Session) -> None:
        super().__init__(pool, settings, session, settings.models_interval)
        self._cache = ListCache()
        self._first_round = threading.Event()

    def wait_first_round(self) -> bool:
        """Wait (at most FIRST_WAIT s) for this worker's first round of fetches; False if it was not running."""
        if not self.started or self._first_round.is_set():
            return False
        self._first_round.wait(FIRST_WAIT)
        return True

    def round_done(self) -> None:
        self._first_round.set()

    # -- fetching --------------------------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Fetch the lists that are due and not claimed by another worker; return how many were fetched."""
        fetched = 0
        for account, fields in self.due("models", self._is_due, min(self.interval, RETRY_FAILED)):
            previous = fields.get("models") or {}
            entries, error = self.fetch(account)
            if entries is not None:
                ids = [e["modelId"] for e in entries if isinstance(e, dict) and isinstance(e.get("modelId"), str)]
                self.pool.write(account.name, "models", {"fetched_at": time.time(), "ids": ids, "models": entries})
                log.info("Kiro account %s may use %d models: %s", account.name, len(ids), ", ".join(ids))
                fetched += 1
            else:
                kept = {k: previous[k] for k in ("fetched_at", "ids", "models") if k in previous}
                self.pool.write(account.name, "models", {**kept, "error": error, "failed_at": time.time()})
        return fetched

    def fetch(self, account: Account) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(the account's model entries, None), or (None, why not)."""
        entries: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            body, error = self._page(account, token)
            if body is None:
                log.info("no model list for Kiro account %s: %s", account.name, error)
                return None, error
            entries += [e for e in body.get("models") or [] if isinstance(e, dict)]
            token = body.get("nextToken") if isinstance(body.get("nextToken"), str) else None
            if not token:
                return entries, None
        return None, f"the list did not end after {MAX_PAGES} pages"

    def _page(self, account: Account, token: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """One page of the answer, refreshing the credential once if Kiro rejects it."""
        return fetch_json(account, lambda credential: self.get(
            account, credential, "ListAvailableModels", {"maxResults": str(PAGE_SIZE)}, FETCH_TIMEOUT,
            after={"nextToken": token} if token else None))

    def _is_due(self, fields: Mapping[str, Any], now: float) -> bool:
        previous = fields.get("models") or {}
        return (now - float(previous.get("fetched_at", 0)) >= self.interval
                and now - float(previous.get("failed_at", 0)) >= RETRY_FAILED)

    # -- reading ---------------------------------------------------------------------------------------------------

    def view(self) -> CatalogView:
        """The models served now: the union of the fetched lists (less the models Kiro refused an account), in
        the service's order; the built-in table while no list is in."""
        states, now = self.pool.states(), time.time()
        union: dict[str, ModelInfo] = {}
        errors, fetched = [], 0
        for account in self.pool.accounts:
            fields = states.get(account.name, {})
            error = (fields.get("models") or {}).get("error")
            if error and account.enabled:
                errors.append(f"the model list of Kiro account {account.name} could not be fetched: {error}")
            models = self._cache.models(account.name, fields) if account.enabled else None
            if models is None:
                continue
            fetched += 1
            refused = refused_ids(fields, now)
            union.update((k, v) for k, v in models.items() if k not in refused and k not in union)
        if fetched:
            return CatalogView(union, "service", warnings=errors)
        if errors:
            return CatalogView(BUILTIN, "builtin", "; ".join(errors), [f"serving the built-in model table: {e}"
                                                                      for e in errors])
        if self.interval <= 0:
            return CatalogView(BUILTIN, "builtin", "KIRO_MODELS_INTERVAL is 0: the model lists are not fetched")
        return CatalogView(BUILTIN, "builtin", "the model lists have not been fetched yet")

    def report(self) -> dict[str, Any]:
        """The catalog part of /health: where the models come from, and each account's list."""
        view, states, now = self.view(), self.pool.states(), time.time()
        accounts = []
        for account in self.pool.accounts:
            fields = states.get(account.name, {})
            models = fields.get("models") or {}
            ids = listed_ids(fields)
            accounts.append({"name": account.name,
                             "fetched_at": iso(float(models["fetched_at"])) if models.get("fetched_at") else None,
                             "models": ids, "error": models.get("error"),
                             "refused": sorted(refused_ids(fields, now))})
        return {"source": view.source, "why": view.why, "served": list(view.models),
                "interval_seconds": self.interval, "accounts": accounts, "warnings": view.warnings}
