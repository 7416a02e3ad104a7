"""A worker's background loop over the accounts: started at its first request, one round every so often.

The credit poller (credits.py) and the model lists (catalog.py) are both such loops (AccountPoller). Each round
asks every account that is due and can serve; which worker or replica asks is settled per account by a claim in
the shared state, so a round is cheap where another process got there first. Both ask Kiro's runtime API as the
IDE does: `GET {KIRO_API_BASE}/<operation>?origin=AI_EDITOR[&profileArn=...]` with the usage headers.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable, Iterator, Mapping

import requests

from ..errors import ApiError
from ..settings import Settings
from ..upstream.headers import usage_headers
from .credential import Credential
from .pool import AccountPool
from .roster import Account

log = logging.getLogger(__name__)


def fetch_json(account: Account, get: Callable[[Credential], requests.Response]) -> tuple[dict[str, Any] | None,
                                                                                        str | None]:
    """(the JSON object Kiro answered, None) or (None, why not) for `get(credential)`, a call to one of Kiro's
    runtime APIs for `account`, made again once with a refreshed credential if Kiro rejects the first."""
    try:
        credential = account.tokens.current()
        response = get(credential)
        if response.status_code in (401, 403):
            response.close()
            response = get(account.tokens.refresh(credential))
    except ApiError as exc:
        return None, exc.message
    except requests.RequestException as exc:
        return None, f"Kiro unreachable ({type(exc).__name__})"
    try:
        if response.status_code != 200:
            return None, f"HTTP {response.status_code}: {response.text[:200]}"
        body = response.json()
    except ValueError:
        return None, "the answer is not JSON"
    finally:
        response.close()
    return (body, None) if isinstance(body, dict) else (None, "the answer is not a JSON object")


class Poller:
    """Runs `poll_once` every `check_every` seconds (at most `interval`) in one daemon thread, from the first
    `ensure_started` on; with `spread`, the first round waits up to 3 s and each pause varies by ±20%, so
    workers booted together do not all ask at once. An interval of 0 or less never starts it."""

    thread_name = "kiro-poller"
    check_every = 60.0
    spread = False

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._started = False
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """True once the loop runs in this process."""
        return self._started

    def ensure_started(self) -> None:
        """Start the background loop once (cheap to call on every request: threads exist after gevent patched)."""
        if self._started or self.interval <= 0:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()

    def poll_once(self) -> int:
        """One round over the accounts; how many were asked."""
        raise NotImplementedError

    def round_done(self) -> None:
        """Called after every round, whether it worked or failed."""

    def _run(self) -> None:
        if self.spread:
            time.sleep(random.uniform(0, min(3.0, self.interval)))
        while True:
            try:
                self.poll_once()
            except Exception:  # a loop that dies would leave what it keeps silently stale
                log.exception("%s: a round failed", self.thread_name)
            finally:
                self.round_done()
            pause = min(self.check_every, self.interval)
            time.sleep(pause * random.uniform(0.8, 1.2) if self.spread else pause)


class AccountPoller(Poller):
    """A Poller over a pool's accounts, asking Kiro's runtime API with each account's own credential."""

    def __init__(self, pool: AccountPool, settings: Settings, session: requests.Session, interval: float) -> None:
        super().__init__(interval)
        self.pool = pool
        self.settings = settings
        self.session = session

    def due(self, kind: str, is_due: Callable[[Mapping[str, Any], float], bool], claim_for: float
            ) -> Iterator[tuple[Account, Mapping[str, Any]]]:
        """The accounts to ask now, with their shared fields: `is_due(fields, now)`, not disabled, off or
        quarantined, and claimed by this worker (the claim `kind:<account>` held for `claim_for` seconds)."""
        states, now = self.pool.states(fresh=True), time.time()
        for account in self.pool.accounts:
            fields = states.get(account.name, {})
            if not is_due(fields, now):
                continue
            if self.pool.availability(account, fields, now).state in ("disabled", "off", "quarantined"):
                continue
            if self.pool.shared.claim(f"{kind}:{account.name}", claim_for):
                yield account, fields

    def get(self, account: Account, credential: Credential, operation: str, params: Mapping[str, str],
            timeout: float, after: Mapping[str, str] | None = None) -> requests.Response:
        """`GET {api_base}/{operation}?origin=AI_EDITOR&{params}[&profileArn=...][&{after}]` as the IDE asks it,
        with the usage headers and the account's machine id; `timeout` is the read timeout."""
        query = {"origin": "AI_EDITOR", **params}
        arn = self.settings.profile_arn or credential.profile_arn
        if arn:
            query["profileArn"] = arn
        query.update(after or {})
        return self.session.get(f"{self.settings.api_base}/{operation}", params=query,
                                headers=usage_headers(credential, self.settings.client_version,
                                                      account.tokens.machine_id()),
                                timeout=(self.settings.connect_timeout, timeout))
