"""The pool as plain data for /health, the status page and metrics: per-account state, never a secret."""
from __future__ import annotations

import time
from typing import Any

from .cooldown import describe, iso
from .pool import POLICY, AccountPool


def account_rows(pool: AccountPool) -> list[dict[str, Any]]:
    """One dict per account: state, cooldown, disabled reason, expiry, counters, usage, credential status."""
    states, counts, now = pool.states(fresh=True), pool.counts(), time.time()
    rows = []
    for account in pool.accounts:
        fields = states.get(account.name, {})
        availability = pool.availability(account, fields, now)
        credential = account.tokens.status(fields)
        state = availability.state
        if state == "healthy" and credential["needs_login"]:
            state = "needs_login"
        cooldown = fields.get("cooldown") if state == "cooling_down" else None
        quarantine = fields.get("quarantine") if state == "quarantined" else None
        disabled = fields.get("disabled") if state == "disabled" else None
        rows.append({
            "name": account.name,
            "state": state,  # healthy | cooling_down | quarantined | disabled | needs_login | off
            "weight": account.weight,
            "limits": {"max_concurrency": account.max_concurrency, "rpm": account.rpm},
            "machine_id_source": account.tokens.identity.source,
            "cooldown": _cooldown(cooldown, now) if cooldown else None,
            "quarantine": _quarantine(quarantine, now) if quarantine else None,
            "disabled": {"why": disabled.get("why"), "since": iso(float(disabled.get("at", now)))}
            if disabled else ({"why": availability.why, "since": None} if state == "off" else None),
            "expires_at": credential["expires_at"],
            "expires_in_seconds": credential["expires_in_seconds"],
            "requests": counts.get(account.name, {}).get("requests", 0),
            "errors": counts.get(account.name, {}).get("errors", 0),
            "last_error": _last_error(fields.get("last_error")),
            "in_flight_this_worker": account.in_flight,
            "usage": _usage(fields.get("usage"), counts.get(account.name, {}).get("credits_micro", 0)),
            "credential": credential,
        })
    return rows


def health_report(pool: AccountPool) -> dict[str, Any]:
    """The pool part of /health: accounts, a summary, the shared-state backend and any warnings."""
    rows = account_rows(pool)
    shared = pool.shared.status()
    warnings = []
    if not shared.get("connected", True):
        warnings.append(f"Redis at {shared.get('url')} is unreachable since {shared.get('down_since')} "
                        f"({shared.get('error')}): this replica serves from its local view in "
                        f"{shared.get('local_dir')}; cooldowns, refreshed tokens and counters are not shared "
                        "with other replicas until Redis returns")
    warnings += filter(None, (token_file_warning(row["name"], row["credential"]) for row in rows))
    quarantined = [row["name"] for row in rows if row["state"] == "quarantined"]
    if quarantined:
        warnings.append(f"Kiro suspended or locked {', '.join(quarantined)}: quarantined, no traffic until a person "
                        "clears it (POST /dashboard/accounts/<name>/clear) or its hold passes")
    available = sum(row["state"] == "healthy" for row in rows)
    if not available:
        warnings.append("no Kiro account can take requests now: see accounts[].state")
    return {"accounts": rows, "pool": {"size": len(rows), "available": available, "policy": POLICY},
            "shared_state": shared, "warnings": warnings}


def token_file_warning(name: str, credential: dict[str, Any]) -> str | None:
    """The warning for an account whose token file exists but cannot be parsed (every worker reads it anew)."""
    if credential.get("token_file") != "unreadable":
        return None
    served = "serving the login ki2api kept in its state directory" if credential.get("loaded") else \
        "no login kept by ki2api either: requests get 401 until the file is readable"
    return (f"account {name}: the token file {credential.get('path')} cannot be parsed ({credential.get('error')}); "
            f"{served}; ki2api never writes over it, and uses it again as soon as it holds a readable login")


def _cooldown(cooldown: dict[str, Any], now: float) -> dict[str, Any]:
    until = float(cooldown.get("until", now))
    kind = str(cooldown.get("kind", ""))
    return {"until": iso(until), "seconds_left": max(0, round(until - now)), "kind": kind,
            "reason": describe(kind), "message": cooldown.get("message"), "failures": cooldown.get("failures")}


def _quarantine(quarantine: dict[str, Any], now: float) -> dict[str, Any]:
    until = quarantine.get("until")
    return {"since": iso(float(quarantine.get("at", now))), "until": iso(float(until)) if until else None,
            "seconds_left": max(0, round(float(until) - now)) if until else None, "why": quarantine.get("why"),
            "cleared_by": "a person (POST /dashboard/accounts/<name>/clear)" + (" or the hold" if until else "")}


def _last_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if not error:
        return None
    return {"at": iso(float(error.get("at", 0))), "kind": error.get("kind"), "status": error.get("status"),
            "message": error.get("message")}


def _usage(usage: dict[str, Any] | None, credits_micro: int) -> dict[str, Any] | None:
    """The fetched usage, less the credits answers were charged since it was fetched (`spent_since_fetch`)."""
    if not usage:
        return None
    keys = ("subscription", "limit", "used", "remaining", "next_reset")
    row = {**{k: usage.get(k) for k in keys}, "fetched_at": iso(float(usage.get("fetched_at", 0)))}
    counted = usage.get("credits_counted")
    if isinstance(counted, int) and credits_micro > counted:  # a usage fetched before this counter: unknown
        spent = (credits_micro - counted) / 1_000_000
        row["spent_since_fetch"] = round(spent, 6)
        if isinstance(row["remaining"], (int, float)):
            row["remaining"] = round(max(0.0, row["remaining"] - spent), 4)
        if isinstance(row["used"], (int, float)):
            row["used"] = round(row["used"] + spent, 4)
    return row
