"""The client-facing model names ki2api accepts and the Kiro model ids they map to."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelNotFound

# Client name -> Kiro's dotted lowercase model id (kiro-protocol.md, section 4).
# claude-3-5-haiku-20241022 is what existing clients are configured with; Kiro
# no longer serves Haiku 3.5, so it maps to the current Haiku.
MODEL_ALIASES: dict[str, str] = {
    "claude-sonnet-4-5-20250929": "claude-sonnet-4.5",
    "claude-sonnet-4-5": "claude-sonnet-4.5",
    "claude-3-5-haiku-20241022": "claude-haiku-4.5",
    "claude-haiku-4-5-20251001": "claude-haiku-4.5",
    "claude-haiku-4-5": "claude-haiku-4.5",
    "claude-opus-4-5-20251101": "claude-opus-4.5",
    "claude-opus-4-5": "claude-opus-4.5",
    "claude-sonnet-4-20250514": "claude-sonnet-4",
    "claude-sonnet-4": "claude-sonnet-4",
    "claude-sonnet-4-6": "claude-sonnet-4.6",
    "claude-opus-4-6": "claude-opus-4.6",
    "claude-opus-4-7": "claude-opus-4.7",
}
KIRO_MODEL_IDS: tuple[str, ...] = tuple(dict.fromkeys(MODEL_ALIASES.values()))
_LONG_CONTEXT = {"claude-sonnet-4.6", "claude-opus-4.6", "claude-opus-4.7"}
CREATED = 1735689600  # 2025-01-01, a fixed `created` for the model list


@dataclass(frozen=True)
class Model:
    """A requested model: the name the client used and the Kiro id it maps to."""

    name: str
    kiro_id: str

    @property
    def context_window(self) -> int:
        """Tokens of context the upstream allows for this model."""
        return 1_000_000 if self.kiro_id in _LONG_CONTEXT else 200_000


def model_names() -> list[str]:
    """Every model name accepted, client names first, then Kiro's own ids."""
    return list(MODEL_ALIASES) + list(KIRO_MODEL_IDS)


def resolve_model(name: object) -> Model:
    """Map a client model name (or a Kiro id) to a Model; raise ModelNotFound naming the valid ones."""
    key = name.strip().lower() if isinstance(name, str) else ""
    kiro_id = MODEL_ALIASES.get(key) or (key if key in KIRO_MODEL_IDS else None)
    if kiro_id is None:
        raise ModelNotFound(
            f"The model {name!r} does not exist. Valid models: {', '.join(model_names())}",
            param="model",
        )
    return Model(name=name, kiro_id=kiro_id)
