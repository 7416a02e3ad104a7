"""The client-facing model names ki2api accepts, the Kiro model ids they map to, and what Kiro says of each."""
from __future__ import annotations

import json
import re
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
    # Its `promptCaching`: the most cache points one request may carry (0: the model caches nothing) and the
    # fewest tokens a cached prefix must have.
    cache_points: int = 0
    cache_min_tokens: int = 0


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
            request_fields_schema=entry.get("additionalModelRequestFieldsSchema"),
            **_prompt_caching(entry.get("promptCaching")))
    return models


def _prompt_caching(value: Any) -> dict[str, int]:
    """ModelInfo's cache fields from a model entry's `promptCaching` (none unless it says it supports caching)."""
    if not isinstance(value, dict) or value.get("supportsPromptCaching") is not True:
        return {}
    points, least = value.get("maximumCacheCheckpointsPerRequest"), value.get("minimumTokensPerCacheCheckpoint")
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        return {}
    return {"cache_points": points,
            "cache_min_tokens": least if isinstance(least, int) and not isinstance(least, bool) and least > 0 else 0}


BUILTIN: dict[str, ModelInfo] = parse_model_list(json.loads(BUILTIN_LIST.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Model:
    """A requested model: the name the client used, the Kiro id it maps to, and what Kiro says of it."""

    name: str
    kiro_id: str
    # What the live catalog (the service's lists, joined over the accounts) says of it; None: the built-in table.
    listed: ModelInfo | None = field(default=None, compare=False)

    @property
    def info(self) -> ModelInfo:
        """Kiro's description of the model: the service's own list when fetched, else the built-in table's."""
        return self.listed or BUILTIN.get(self.kiro_id) or ModelInfo(self.kiro_id)

    @property
    def context_window(self) -> int:
        """Tokens of context the upstream allows for this model (its `tokenLimits.maxInputTokens`)."""
        return self.info.max_input_tokens


_DATE = re.compile(r"-(?:\d{8}|latest)$")  # Anthropic's dated names: claude-opus-4-5-20251101, ...-latest
_DASHED_VERSION = re.compile(r"(?<=\d)-(?=\d)")  # 4-5 -> 4.5, 3-7 -> 3.7


ONE_MILLION_SUFFIX = "[1m]"


def kiro_id_for(name: str, models: Mapping[str, ModelInfo]) -> str | None:
    """The Kiro id a (lowercased) client name maps to among `models`, or None.

    A listed id is taken as it is; then the alias table; then, generically, Anthropic's dated and dashed
    names: the date dropped, dashes between digits made dots (`claude-opus-4-7-20260101` -> `claude-opus-4.7`).
    Claude Code's `[1m]` suffix (its own mark of a 1M-token window) is dropped: the window is Kiro's anyway.
    """
    name = name.removesuffix(ONE_MILLION_SUFFIX)
    if name in models:
        return name
    alias = MODEL_ALIASES.get(name)
    if alias in models:
        return alias
    dotted = _DASHED_VERSION.sub(".", _DATE.sub("", name))
    return dotted if dotted in models else None


def model_names(models: Mapping[str, ModelInfo] | None = None) -> list[str]:
    """Every model name accepted, each once: the client names whose model is listed, then Kiro's own ids."""
    models = BUILTIN if models is None else models
    return [a for a, kiro_id in MODEL_ALIASES.items() if kiro_id in models and a not in models] + list(models)


def resolve_model(name: object, models: Mapping[str, ModelInfo] | None = None) -> Model:
    """Map a client model name (or a Kiro id) to a Model among `models` (the live catalog; default: the
    built-in table); raise ModelNotFound naming the models that can be served."""
    models = BUILTIN if models is None else models
    key = name.strip().lower() if isinstance(name, str) else ""
    kiro_id = kiro_id_for(key, models) if key else None
    if kiro_id is None:
        raise ModelNotFound(
            f"The model {name!r} does not exist or no Kiro account may use it. "
            f"Valid models: {', '.join(model_names(models))}",
            param="model",
        )
    return Model(name=name, kiro_id=kiro_id, listed=models.get(kiro_id))
