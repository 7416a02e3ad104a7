"""Which models Kiro refuses cache points for, as learned and shared: pure functions over the account states.

Kiro's published model takes `cachePoint` on messages, but no captured request carries one, so the live service
may refuse it ("Improperly formed request."). When a request with cache points is refused so and the same
request without them is answered, the model is marked in the answering account's shared field
"cache_refusals" `{Kiro id: {"at", "until"}}` (accounts/protocols.py), which every worker and replica reads;
while any account's mark on a model lasts (REFUSAL_TTL, so that a later change of the service is picked up),
no request for that model carries cache points, whichever account serves it: all accounts call one service.
"""
from __future__ import annotations

from typing import Any, Mapping

FIELD = "cache_refusals"
REFUSAL_TTL = 6 * 3600.0  # seconds a model is sent no cache points after Kiro refused them
MALFORMED = "improperly formed request"  # Kiro's whole message for a body it will not read


def refuses(states: Mapping[str, Mapping[str, Any]], model: str | None, now: float) -> bool:
    """True if some account's mark says Kiro lately refused cache points for `model`."""
    if model is None:
        return False
    for fields in states.values():
        mark = (fields.get(FIELD) or {}).get(model)
        if isinstance(mark, dict) and isinstance(mark.get("until"), (int, float)) and mark["until"] > now:
            return True
    return False


def with_refusal(fields: Mapping[str, Any], model: str, now: float) -> dict[str, Any]:
    """The account's new "cache_refusals" value with `model` marked from `now`, expired marks dropped."""
    marks = {k: v for k, v in (fields.get(FIELD) or {}).items()
             if isinstance(v, dict) and isinstance(v.get("until"), (int, float)) and v["until"] > now}
    marks[model] = {"at": now, "until": now + REFUSAL_TTL}
    return marks


def says_malformed(status: int, body: Mapping[str, Any]) -> bool:
    """True if a refusal is Kiro's 400 "Improperly formed request." (what a body it cannot read gets)."""
    message = str(body.get("message") or body.get("Message") or "")
    return status == 400 and message.strip().lower().rstrip(".") == MALFORMED
