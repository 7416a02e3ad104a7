"""The pool of Kiro accounts: which one serves a request, its limits, cooldowns and disabled logins.

Picking: weighted least-in-flight. Each request goes to the available account with the fewest requests
in flight per unit of weight in this worker; ties (the common case at low load) are broken at random in
proportion to weight. Streams last from a second to minutes, so counting what is in flight balances what
the upstream actually limits (concurrent work per account) better than a round robin counting requests,
which piles long streams onto one account; the random tie-break spreads idle traffic by weight without
any state shared between workers.

Accounts at their limits (`max_concurrency` in this worker, `rpm` over every process) are skipped, and so are
accounts resting, disabled or quarantined. The pool is made of parts, each keeping its own shared fields:
- roster.py: the accounts, this worker's view of their shared state, the counters;
- quarantine.py: an account Kiro suspended takes no traffic until a person clears it or its hold passes;
- model_refusals.py: a request for a model goes only to accounts that may use it (entitlement.py); a model
  no account may use is a 404 naming those that can be served;
- spending.py: the credits each account was charged, its usage limits.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Collection

from ..errors import ApiError, AuthenticationError, RateLimited, UpstreamUnavailable
from .cooldown import describe, iso
from .entitlement import may_serve
from .model_refusals import MODEL_REFUSED, ModelRefusals
from .quarantine import SUSPENDED, Quarantines, held
from .roster import Account
from .spending import Spending

log = logging.getLogger(__name__)

POLICY = "weighted least-in-flight (ties broken at random by weight)"
RPM_WINDOW = 60.0  # seconds over which an account's `rpm` is counted


@dataclass(frozen=True)
class Availability:
    """Whether an account may take a request now; if not, until when or why."""

    state: str  # healthy | cooling_down | quarantined | disabled | off
    until: float | None = None
    kind: str | None = None
    why: str | None = None


class Lease:
    """One request's hold on one account; every outcome method also releases it (once)."""

    def __init__(self, pool: "AccountPool", account: Account, model: str | None = None) -> None:
        self.pool = pool
        self.account = account
        self.model = model  # the Kiro model id the lease was taken for, if known
        self._held = True

    def served(self) -> None:
        """Kiro accepted the request (HTTP 200): count it, and forget an expired cooldown or a stale flag."""
        self.pool.served(self.account)

    def refused(self, kind: str, error: ApiError, retry_after: float | None) -> None:
        """Kiro refused this account (throttled, quota, ...): rest it and let the request try another.

        A refused model (MODEL_REFUSED) rests the account for that model only."""
        if kind == MODEL_REFUSED and self.model is not None:
            self.pool.refuse_model(self.account, self.model, error)
        else:
            self.pool.cool(self.account, kind, error, retry_after)
        self.release()

    def disable(self, error: ApiError) -> None:
        """The login is unusable (dead refresh token, no credential): take the account out until it changes."""
        self.pool.disable(self.account, error)
        self.release()

    def failed(self, kind: str, error: ApiError) -> None:
        """Any other failure on this account: counted and noted, nothing more."""
        self.pool.note_error(self.account, kind, error)
        self.release()

    def spent(self, credits: float) -> None:
        """Kiro charged the account `credits` for this answer (counted pool-wide; works after release too)."""
        self.pool.spent(self.account, credits)

    def release(self) -> None:
        """Give the in-flight slot back (idempotent)."""
        if self._held:
            self._held = False
            self.pool.release(self.account)


class AccountPool(Quarantines, ModelRefusals, Spending):
    """Picks accounts for requests and keeps their shared state; one per worker process, built by create_app."""

    # -- picking ---------------------------------------------------------------------------------------------------

    def acquire(self, exclude: Collection[str] = (), last: ApiError | None = None, model: str | None = None
                ) -> Lease:
        """A lease on the best available account not in `exclude` that may use `model` (a Kiro id) and is under
        its limits (`max_concurrency` in this worker, `rpm` over every process); else the error saying when to
        retry, or a 404 if no account may use that model."""
        states, now = self.states(), time.time()
        candidates = [a for a in self.accounts if a.name not in exclude
                      and (model is None or may_serve(states.get(a.name, {}), model, now))
                      and self.availability(a, states.get(a.name, {}), now).state == "healthy"]
        if not candidates:
            if model is not None and not any(may_serve(states.get(a.name, {}), model, now) for a in self.accounts):
                raise self.not_entitled(model, states, now, last)
            raise self.unavailable(last)
        waits: list[float] = []
        while True:
            with self._lock:
                free = [a for a in candidates if a.max_concurrency is None or a.in_flight < a.max_concurrency]
                if not free:
                    raise at_limits(len(candidates), waits)
                best = min(a.in_flight / a.weight for a in free)
                ties = [a for a in free if a.in_flight / a.weight == best]
                account = ties[0] if len(ties) == 1 else self._rng.choices(ties, [a.weight for a in ties])[0]
                account.in_flight += 1
            wait = self.shared.take(account.name, account.rpm, RPM_WINDOW) if account.rpm else 0.0
            if not wait:
                return Lease(self, account, model)
            self.release(account)  # this minute's requests are used up: try the others
            candidates.remove(account)
            waits.append(wait)

    def release(self, account: Account) -> None:
        """Called by Lease.release."""
        with self._lock:
            account.in_flight -= 1

    def availability(self, account: Account, fields: dict[str, Any], now: float) -> Availability:
        """An account's availability from its shared fields."""
        if not account.enabled:
            return Availability("off", why="enabled: false in KIRO_ACCOUNTS_FILE")
        quarantine = held(fields, now)
        if quarantine:
            until = quarantine.get("until")
            return Availability("quarantined", until=None if until is None else float(until), kind=SUSPENDED,
                                why=str(quarantine.get("why")))
        disabled = fields.get("disabled")
        # fingerprint() reloads the login whenever a token file or the shared record (Redis included) changed
        if disabled and disabled.get("fingerprint") == account.tokens.fingerprint():
            return Availability("disabled", why=str(disabled.get("why")))
        cooldown = fields.get("cooldown")
        if cooldown and float(cooldown.get("until", 0)) > now:
            return Availability("cooling_down", until=float(cooldown["until"]), kind=str(cooldown.get("kind")))
        return Availability("healthy")

    def unavailable(self, last: ApiError | None) -> ApiError:
        """The error for a request no account can take: 429 with Retry-After while some rest, else 503/401."""
        states, now = self.states(), time.time()
        rows = [(a, self.availability(a, states.get(a.name, {}), now)) for a in self.accounts]
        if len(rows) == 1:
            return _single(rows[0][1], last, now)
        resting = [av for _, av in rows if av.state == "cooling_down"]
        summary = "; ".join(_describe(a.name, av) for a, av in rows if av.state != "healthy")
        if resting:
            soonest = min(av.until or now for av in resting)
            code = "insufficient_quota" if all(av.kind == "quota" for av in resting) else "rate_limit_exceeded"
            return RateLimited(f"All {len(rows)} Kiro accounts are unavailable ({summary}); the first is back in "
                               f"{max(1, round(soonest - now))} s, at {iso(soonest)}.", code=code,
                               retry_after=max(1.0, soonest - now))
        if all(av.state in ("disabled", "off", "quarantined") for _, av in rows):
            return UpstreamUnavailable(f"No Kiro account can serve: {summary}. Log the disabled accounts in again; "
                                       "a quarantined one is cleared by a person (docs/accounts.md).")
        return last or UpstreamUnavailable("No Kiro account could serve this request; retry shortly.",
                                           retry_after=5.0)

    # -- outcomes --------------------------------------------------------------------------------------------------

    def served(self, account: Account) -> None:
        """Count a request Kiro accepted; clear an expired cooldown and a disabled flag the login outgrew."""
        self._count(account.name, "requests")
        fields, now = self.states().get(account.name, {}), time.time()
        cooldown = fields.get("cooldown")
        if cooldown and float(cooldown.get("until", 0)) <= now:
            self.write(account.name, "cooldown", None)
        if fields.get("disabled"):
            self.write(account.name, "disabled", None)
        self.end_passed(account, fields, now)

    def cool(self, account: Account, kind: str, error: ApiError, retry_after: float | None) -> None:
        """Rest an account: backoff growing with consecutive refusals, unless already resting as long; a
        suspension quarantines it instead."""
        if kind == SUSPENDED:
            self.quarantine(account, error)
            return
        now = time.time()
        fields = self.states(fresh=True).get(account.name, {})  # rare: worth the newest failures and usage
        previous = fields.get("cooldown") or {}
        active = float(previous.get("until", 0)) > now
        failures = int(previous.get("failures", 0)) + (0 if active else 1)
        reset = (fields.get("usage") or {}).get("next_reset_epoch")
        until = self.policy.until(kind, max(1, failures), retry_after, reset, now, self._rng)
        self.note_error(account, kind, error)
        if active and float(previous["until"]) >= until:
            return
        self.write(account.name, "cooldown", {"until": until, "kind": kind, "message": error.message[:300],
                                              "failures": failures, "at": now})
        log.warning("Kiro account %s: %s; resting it for %.0f s, until %s", account.name, describe(kind),
                    until - now, iso(until))

    def disable(self, account: Account, error: ApiError) -> None:
        """Take an account out until its login changes (the flag carries the refresh token's fingerprint)."""
        self._count(account.name, "errors")
        fingerprint = account.tokens.fingerprint()
        previous = self.states().get(account.name, {}).get("disabled") or {}
        if previous.get("fingerprint") == fingerprint and previous.get("why") == error.message:
            return
        self.write(account.name, "disabled", {"why": error.message, "at": time.time(), "fingerprint": fingerprint})
        log.error("Kiro account %s is disabled until it is logged in again: %s", account.name, error.message)

    def republish(self) -> None:
        """Offer each account's newest token to the shared state again, and read its machine id from it again
        (Redis has returned: another replica may have created the id meanwhile)."""
        for account in self.accounts:
            account.tokens.publish()
            account.tokens.identity.forget()


def at_limits(candidates: int, waits: list[float]) -> RateLimited:
    """The 429 for a request every usable account is too busy for (its max_concurrency or rpm reached)."""
    retry = max(1.0, min(waits)) if waits else 1.0
    which = "the Kiro account is" if candidates == 1 else f"all {candidates} usable Kiro accounts are"
    return RateLimited(f"Busy: {which} at the limits set for them (max_concurrency, rpm); retry in "
                       f"{round(retry)} s.", code="rate_limit_exceeded", retry_after=retry)


def _describe(name: str, availability: Availability) -> str:
    if availability.state == "quarantined":
        until = f"until {iso(availability.until)}" if availability.until else "until a person clears it"
        return f"{name}: quarantined {until} ({availability.why})"
    if availability.state == "cooling_down":
        return f"{name}: resting until {iso(availability.until or 0)} ({describe(availability.kind or '')})"
    return f"{name}: {availability.why}"


def _single(availability: Availability, last: ApiError | None, now: float) -> ApiError:
    """The one-account case keeps the upstream's own error (401 for a dead login, 429 with Retry-After)."""
    if last is not None:
        if isinstance(last, RateLimited) and availability.until:
            last.retry_after = max(last.retry_after or 0.0, availability.until - now)
        return last
    if availability.state == "cooling_down":
        until = availability.until or now
        code = "insufficient_quota" if availability.kind == "quota" else "rate_limit_exceeded"
        return RateLimited(f"The Kiro account is resting ({describe(availability.kind or '')}) until {iso(until)}; "
                           f"retry in {max(1, round(until - now))} s.", code=code, retry_after=max(1.0, until - now))
    if availability.state == "off":
        return UpstreamUnavailable(f"The only Kiro account is disabled ({availability.why}).")
    if availability.state == "quarantined":
        return UpstreamUnavailable(f"The only Kiro account is quarantined: {_describe('it', availability)}.")
    return AuthenticationError(availability.why or "The Kiro login is unusable: log in to Kiro IDE again.")
