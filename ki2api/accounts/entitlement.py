"""Which models an account may use, read from its shared fields: pure functions, no I/O.

Two shared fields per account (protocols.py) carry it:
- "models": the account's ListAvailableModels answer as last fetched, `{"fetched_at", "ids": [Kiro ids],
  "models": [Kiro's entries]}`, plus `{"error", "failed_at"}` when the last fetch failed (the list before it
  is kept). An account whose list was never fetched is assumed to serve the built-in table.
- "model_refusals": `{Kiro id: {"at", "until", "message"}}`, the models Kiro refused this account with
  INVALID_MODEL_ID although it listed them (or before its list came), each for a while.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..models import BUILTIN, ModelInfo, parse_model_list

Fields = Mapping[str, Any]  # one account's shared fields


def listed_ids(fields: Fields) -> list[str] | None:
    """The Kiro ids the account's fetched list names, or None if its list was never fetched."""
    models = fields.get("models") or {}
    ids = models.get("ids")
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) and models.get("fetched_at") else None


def refused_ids(fields: Fields, now: float) -> set[str]:
    """The models Kiro refused this account, while their marks last."""
    refusals = fields.get("model_refusals") or {}
    return {kiro_id for kiro_id, mark in refusals.items()
            if isinstance(mark, dict) and float(mark.get("until", 0)) > now}


def may_serve(fields: Fields, kiro_id: str, now: float) -> bool:
    """True if the account lists the model (or has no list yet) and Kiro has not lately refused it that model."""
    ids = listed_ids(fields)
    return (ids is None or kiro_id in ids) and kiro_id not in refused_ids(fields, now)


def servable_ids(states: Iterable[Fields], now: float) -> list[str]:
    """The models at least one of these accounts may use, in the service's order."""
    found: dict[str, None] = {}
    for fields in states:
        refused = refused_ids(fields, now)
        found.update((i, None) for i in (listed_ids(fields) or list(BUILTIN)) if i not in refused)
    return list(found)


class ListCache:
    """Parsed model lists, kept per (account, fetch) so that a list is parsed once, not on every request."""

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[Any, dict[str, ModelInfo]]] = {}

    def models(self, name: str, fields: Fields) -> dict[str, ModelInfo] | None:
        """{Kiro id: ModelInfo} of the account's fetched list, or None if it has none."""
        models = fields.get("models") or {}
        if listed_ids(fields) is None:
            return None
        stamp = models.get("fetched_at")
        cached = self._parsed.get(name)
        if cached is None or cached[0] != stamp:
            cached = (stamp, parse_model_list({"models": models.get("models") or []}))
            self._parsed[name] = cached
        return cached[1]
