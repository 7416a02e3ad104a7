"""The pool of Kiro accounts: which one serves a request, cooldowns, disabled logins, counters.

Picking: weighted least-in-flight. Each request goes to the available account with the fewest requests
in flight per unit of weight in this worker; ties (the common case at low load) are broken at random in
proportion to weight. Streams last from a second to minutes, so counting what is in flight balances what
the upstream actually limits (concurrent work per account) better than a round robin counting requests,
which piles long streams onto one account; the random tie-break spreads idle traffic by weight without
any state shared between workers.

Accounts at their limits (`max_concurrency` in this worker, `rpm` over every process) are skipped; an account
Kiro suspended is quarantined: no traffic at all until a person clears it or its hold passes.

Account state (cooldowns, quarantines, disabled flags, usage, last error) lives in a SharedState and is read
at most once per VIEW_TTL per worker; counters are summed locally and added to the shared state once per second.

A request for a model goes only to accounts that may use it (entitlement.py: the account's fetched model list,
less the models Kiro lately refused it); a model no account may use is a 404 naming those that can be served.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Collection

from ..errors import ApiError, AuthenticationError, ModelNotFound, RateLimited, UpstreamUnavailable
from .cooldown import CooldownPolicy, describe, iso
from .entitlement import may_serve, refused_ids, servable_ids
from .protocols import AccountStates, SharedState
from .token_manager import TokenManager

log = logging.getLogger(__name__)

VIEW_TTL = 1.0  # seconds a worker trusts its copy of the shared account state
FLUSH_INTERVAL = 1.0  # seconds between counter flushes to the shared state
ERROR_NOTE_INTERVAL = 1.0  # at most one shared last_error write per account per second
POLICY = "weighted least-in-flight (ties broken at random by weight)"
MODEL_REFUSED = "model_unavailable"  # the refusal kind of Kiro's INVALID_MODEL_ID: one model, not the account
MODEL_REFUSAL_TTL = 3600.0  # seconds an account is not offered a model Kiro refused it
RPM_WINDOW = 60.0  # seconds over which an account's `rpm` is counted
SUSPENDED = "suspended"  # the refusal kind that quarantines (cooldown.KINDS)


@dataclass(eq=False)
class Account:
    """One configured Kiro account and this worker's hold on it."""

    name: str
    weight: float
    enabled: bool
    tokens: TokenManager
    max_concurrency: int | None = None  # the accounts file's limits (None: none)
    rpm: int | None = None
    in_flight: int = 0
    noted_at: float = 0.0


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


class AccountPool:
    """Picks accounts for requests and keeps their shared state; one per worker process, built by create_app."""

    def __init__(self, accounts: list[Account], shared: SharedState, policy: CooldownPolicy,
                 rng: random.Random | None = None) -> None:
        self.accounts = accounts
        self.shared = shared
        self.policy = policy
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # created after gevent patched threading
        self._view: AccountStates = {}
        self._view_at = float("-inf")
        self._pending: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._flusher = False  # a thread (a greenlet under gevent) sends the counters while there are some

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
        quarantine = fields.get("quarantine")
        if quarantine and (quarantine.get("until") is None or float(quarantine["until"]) > now):
            until = quarantine.get("until")
            return Availability("quarantined", until=None if until is None else float(until), kind="suspended",
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

    def not_entitled(self, model: str, states: AccountStates, now: float, last: ApiError | None = None
                     ) -> ModelNotFound:
        """The 404 for a model no account may use, naming the models that can be served (and Kiro's words, when
        this request's own refusal is why)."""
        servable = servable_ids((states.get(a.name, {}) for a in self.accounts if a.enabled), now)
        said = f" (Kiro: {last.message})" if last is not None else ""
        return ModelNotFound(f"No Kiro account may use the model {model!r}{said}. Models that can be served: "
                             f"{', '.join(servable) or 'none'}", param="model")

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
        quarantine = fields.get("quarantine")
        if quarantine and quarantine.get("until") is not None and float(quarantine["until"]) <= now:
            # its hold passed and Kiro served it again (a request begun before the quarantine clears nothing)
            self.write(account.name, "quarantine", None)
            log.warning("Kiro account %s served a request again: its quarantine is over", account.name)

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

    def refuse_model(self, account: Account, model: str, error: ApiError) -> None:
        """Kiro refused this account one model: offer it that model again only after MODEL_REFUSAL_TTL."""
        self.note_error(account, MODEL_REFUSED, error)
        now = time.time()
        fields = self.states(fresh=True).get(account.name, {})
        refused = refused_ids(fields, now)
        marks = {k: v for k, v in (fields.get("model_refusals") or {}).items() if k in refused}
        marks[model] = {"at": now, "until": now + MODEL_REFUSAL_TTL, "message": error.message[:300]}
        self.write(account.name, "model_refusals", marks)
        log.warning("Kiro account %s may not use the model %s (%s); that model goes to other accounts for %.0f s",
                    account.name, model, error.message, MODEL_REFUSAL_TTL)

    def quarantine(self, account: Account, error: ApiError) -> None:
        """Take an account Kiro suspended out of service: no traffic until a person clears it or the hold passes."""
        self.note_error(account, SUSPENDED, error)
        now = time.time()
        current = self.states(fresh=True).get(account.name, {}).get("quarantine")
        if current and (current.get("until") is None or float(current["until"]) > now):
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

    def disable(self, account: Account, error: ApiError) -> None:
        """Take an account out until its login changes (the flag carries the refresh token's fingerprint)."""
        self._count(account.name, "errors")
        fingerprint = account.tokens.fingerprint()
        previous = self.states().get(account.name, {}).get("disabled") or {}
        if previous.get("fingerprint") == fingerprint and previous.get("why") == error.message:
            return
        self.write(account.name, "disabled", {"why": error.message, "at": time.time(), "fingerprint": fingerprint})
        log.error("Kiro account %s is disabled until it is logged in again: %s", account.name, error.message)

    def note_error(self, account: Account, kind: str, error: ApiError) -> None:
        """Count an error; share it as the account's last error (at most once a second per worker)."""
        self._count(account.name, "errors")
        now = time.time()
        if now - account.noted_at >= ERROR_NOTE_INTERVAL:
            account.noted_at = now
            self.write(account.name, "last_error", {"at": now, "kind": kind, "status": error.status,
                                                    "message": error.message[:300]})

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

    def republish(self) -> None:
        """Offer each account's newest token to the shared state again, and read its machine id from it again
        (Redis has returned: another replica may have created the id meanwhile)."""
        for account in self.accounts:
            account.tokens.publish()
            account.tokens.identity.forget()

    # -- shared state ----------------------------------------------------------------------------------------------

    def states(self, fresh: bool = False) -> AccountStates:
        """The shared account states, re-read at most once per VIEW_TTL (or now, if `fresh`)."""
        if fresh or time.monotonic() - self._view_at > VIEW_TTL:
            self._view, self._view_at = self.shared.states(), time.monotonic()
        return self._view

    def write(self, name: str, field: str, value: dict[str, Any] | None) -> None:
        """Set or clear one shared field, and see the change in this worker at once."""
        self.shared.update(name, field, value)
        fields = self._view.setdefault(name, {})
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value

    def counts(self) -> dict[str, dict[str, int]]:
        """Counters over every worker (and replica, with Redis)."""
        self.flush()
        return self.shared.counts()

    def flush(self) -> None:
        """Send the requests, errors and credits counted so far to the shared state."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        if pending:
            self.shared.add_counts({name: dict(c) for name, c in pending.items()})

    def _count(self, name: str, counter: str, amount: int = 1) -> None:
        with self._lock:
            self._pending[name][counter] += amount
            if self._flusher:
                return
            self._flusher = True
        threading.Thread(target=self._flush_while_counting, name="ki2api-counters", daemon=True).start()

    def _flush_while_counting(self) -> None:
        """Flush once per FLUSH_INTERVAL, and stop after an interval in which nothing was counted."""
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()
            with self._lock:
                if not self._pending:
                    self._flusher = False
                    return


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
