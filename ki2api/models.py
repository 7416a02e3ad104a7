"""The client-facing model names ki2api accepts, the Kiro model ids they map to, and what Kiro says of each."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelNotFound

# Kiro's ListAvailableModels answer as captured (tests/fixtures/kiro-capture/03.meta.json): the table used
# until, or when, the service's own list cannot be had.
BUILTIN_LIST = Path(__file__).with_name("data") / "models.json"

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
CREATED = 1735689600  # 2025-01-01, a fixed `created` for the model list
DEFAULT_WINDOW = 200_000  # a model Kiro says nothing of


@dataclass(frozen=True)
class ModelInfo:
    """What Kiro's ListAvailableModels says of one model."""

    kiro_id: str
    max_input_tokens: int = DEFAULT_WINDOW
    max_output_tokens: int | None = None
    input_types: tuple[str, ...] = ("TEXT",)
    rate_multiplier: float | None = None
    description: str = ""
    # The JSON Schema of `additionalModelRequestFields` the model takes; None: it takes none.
    request_fields_schema: Mapping[str, Any] | None = field(default=None, compare=False)


def parse_model_list(body: Mapping[str, Any]) -> dict[str, ModelInfo]:
    """{Kiro id: ModelInfo} from a ListAvailableModels answer; entries without a modelId are skipped."""
    models = {}
    for entry in body.get("models") or ():
        if not isinstance(entry, dict) or not isinstance(entry.get("modelId"), str):
            continue
        limits = entry.get("tokenLimits") or {}
        models[entry["modelId"]] = ModelInfo(
            kiro_id=entry["modelId"],
            max_input_tokens=int(limits.get("maxInputTokens") or DEFAULT_WINDOW),
            max_output_tokens=int(limits["maxOutputTokens"]) if limits.get("maxOutputTokens") else None,
            input_types=tuple(entry.get("supportedInputTypes") or ("TEXT",)),
            rate_multiplier=entry.get("rateMultiplier"),
            description=entry.get("description") or "",
            request_fields_schema=entry.get("additionalModelRequestFieldsSchema"))
    return models


BUILTIN: dict[str, ModelInfo] = parse_model_list(json.loads(BUILTIN_LIST.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Model:
    """A requested model: the name the client used, the Kiro id it maps to, and what Kiro says of it."""

    name: str
    kiro_id: str

    @property
    def info(self) -> ModelInfo:
        """Kiro's description of the model (the built-in table's)."""
        return BUILTIN.get(self.kiro_id) or ModelInfo(self.kiro_id)

    @property
    def context_window(self) -> int:
        """Tokens of context the upstream allows for this model (its `tokenLimits.maxInputTokens`)."""
        return self.info.max_input_tokens


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
