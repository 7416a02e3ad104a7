"""Native reasoning in the fake Kiro: the signatures it issues, and what it refuses as the service does.

- `additionalModelRequestFields` must conform to the requested model's `additionalModelRequestFieldsSchema`
  in the captured model list (fixture row 03, read here, never ki2api's copy); a model without one takes none.
  The service refuses both with its generic 400 (kiro-protocol.md section 10).
- An assistant turn's `reasoningContent` in history is `{"reasoningText": {"text", "signature"?}}` or
  `{"redactedContent": data}`. A signature, or redacted data, this fake did not issue for that very text is
  refused with 400 `THINKING_SIGNATURE_INVALID`; unsigned reasoning text is taken (the capture's minimax
  history has it).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

import jsonschema

from tests.helpers.fixtures import CAPTURE

_KEY = b"fake-kiro reasoning signatures"
SIGNATURE_INVALID = {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                     "message": "Invalid `signature` in `thinking` block", "reason": "THINKING_SIGNATURE_INVALID"}


@lru_cache(maxsize=1)
def model_schemas() -> dict[str, dict[str, Any] | None]:
    """{model id: its additionalModelRequestFieldsSchema or None}, from the captured ListAvailableModels answer."""
    body = json.loads((CAPTURE / "03.meta.json").read_text(encoding="utf-8"))["responseBody"]
    return {m["modelId"]: m.get("additionalModelRequestFieldsSchema") for m in body["models"]}


def sign(text: str) -> str:
    """The signature this fake issues for a reasoning text (bound to the text, as the real one is)."""
    digest = hmac.new(_KEY, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"fakesig{digest}"


def redacted_data(seed: str) -> str:
    """Redacted reasoning content this fake issues."""
    return f"fakeredacted{hmac.new(_KEY, b'redacted:' + seed.encode(), hashlib.sha256).hexdigest()}"


def _issued_redacted(data: str) -> bool:
    return data.startswith("fakeredacted") and len(data) == len("fakeredacted") + 64


def fields_problem(body: dict[str, Any], model_id: str) -> str | None:
    """Why the service would refuse the body's additionalModelRequestFields for `model_id`, or None."""
    if "additionalModelRequestFields" not in body:
        return None
    fields = body["additionalModelRequestFields"]
    schema = model_schemas().get(model_id)
    if not schema:
        return f"additionalModelRequestFields sent for {model_id}, whose schema allows none"
    try:
        jsonschema.validate(fields, schema)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top)"
        return f"additionalModelRequestFields at {where}: {exc.message}"
    return None


def _history_reasoning(body: dict[str, Any]) -> list[Any]:
    found = []
    for entry in body["conversationState"]["history"]:
        message = entry.get("assistantResponseMessage")
        if isinstance(message, dict) and "reasoningContent" in message:
            found.append(message["reasoningContent"])
    return found


def shape_problem(body: dict[str, Any]) -> str | None:
    """Why a history reasoningContent is malformed (the generic 400), or None."""
    for content in _history_reasoning(body):
        if not isinstance(content, dict) or len(content) != 1:
            return f"reasoningContent must hold exactly one of reasoningText, redactedContent: {content!r}"
        if "redactedContent" in content:
            if not isinstance(content["redactedContent"], str) or not content["redactedContent"]:
                return "reasoningContent.redactedContent must be a non-empty string"
            continue
        text = content.get("reasoningText")
        if not isinstance(text, dict) or not isinstance(text.get("text"), str) or set(text) - {"text", "signature"}:
            return f"reasoningContent.reasoningText must be {{text, signature?}}: {text!r}"
        if "signature" in text and not isinstance(text["signature"], str):
            return "reasoningContent.reasoningText.signature must be a string"
    return None


def signature_problem(body: dict[str, Any]) -> str | None:
    """Which history reasoning carries a signature (or redacted data) this fake did not issue, or None."""
    for content in _history_reasoning(body):
        if "redactedContent" in content:
            if not _issued_redacted(content["redactedContent"]):
                return "redactedContent this service did not issue"
            continue
        text = content["reasoningText"]
        if "signature" in text and not hmac.compare_digest(text["signature"], sign(text["text"])):
            return "reasoningText signature this service did not issue for that text"
    return None
