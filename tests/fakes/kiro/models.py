"""The fake Kiro's ListAvailableModels: each account's model list, paged, and the checks the IDE's call must pass.

An account's list is configured as model ids (entries taken from the captured answer, capture row 03; an id
the capture lacks gets a plain entry with 200k/64k limits) or as whole entries; without one, an account may
use every captured model. The chat endpoint refuses a model the account does not list the way Kiro does
(400, reason INVALID_MODEL_ID).
"""
from __future__ import annotations

import json
from typing import Any

from tests.fakes.kiro.script import SpecError
from tests.helpers.fixtures import CAPTURE

INVALID_MODEL = {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                 "message": "Invalid model. Please select a different model to continue.", "reason": "INVALID_MODEL_ID"}
MAX_RESULTS = 50  # what the IDE asks for; more is refused here, so ki2api must not ask for more


def captured() -> dict[str, Any]:
    """The captured ListAvailableModels answer."""
    body = json.loads((CAPTURE / "03.meta.json").read_text(encoding="utf-8"))["responseBody"]
    return json.loads(body) if isinstance(body, str) else body


CAPTURED = captured()
_BY_ID = {entry["modelId"]: entry for entry in CAPTURED["models"]}


def entries(config: list[Any] | None) -> list[dict[str, Any]]:
    """An account's model entries from its configured list (None: every captured model)."""
    if config is None:
        return list(CAPTURED["models"])
    if not isinstance(config, list):
        raise SpecError("models must be a list of model ids or entries")
    found = []
    for item in config:
        if isinstance(item, dict) and isinstance(item.get("modelId"), str):
            found.append(item)
        elif isinstance(item, str):
            found.append(_BY_ID.get(item) or {"modelId": item, "modelName": item, "rateUnit": "Credit",
                                               "supportedInputTypes": ["TEXT"],
                                               "tokenLimits": {"maxInputTokens": 200000, "maxOutputTokens": 64000}})
        else:
            raise SpecError(f"a model is an id or an entry with a modelId: {item!r}")
    return found


def page(models: list[dict[str, Any]], query: dict[str, str], page_size: int | None) -> tuple[int, dict[str, Any]]:
    """(status, body) for one ListAvailableModels call: the IDE's query checked, one page of `models`."""
    if query.get("origin") != "AI_EDITOR":
        return 400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                     "message": "1 validation error detected: origin must be AI_EDITOR here"}
    size = query.get("maxResults", str(MAX_RESULTS))
    if not size.isdigit() or not 1 <= int(size) <= MAX_RESULTS:
        return 400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                     "message": f"maxResults must be between 1 and {MAX_RESULTS}"}
    limit = min(int(size), page_size or MAX_RESULTS)
    token = query.get("nextToken")
    if token is not None and (not token.startswith("page-") or not token[5:].isdigit()
                              or int(token[5:]) >= len(models)):
        return 400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                     "message": "Invalid nextToken"}
    start = int(token[5:]) if token else 0
    body: dict[str, Any] = {"defaultModel": CAPTURED["defaultModel"], "models": models[start:start + limit]}
    if start + limit < len(models):
        body["nextToken"] = f"page-{start + limit}"
    return 200, body
