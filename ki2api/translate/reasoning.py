"""Reasoning a request asks for, mapped once for every API: Kiro's native fields, or the legacy prompt prefix.

OpenAI's `reasoning_effort`, OpenRouter's `reasoning` object, the `-thinking` model suffix, and Anthropic's
`thinking` and `output_config.effort` become one `ReasoningAsk`. `apply_reasoning` then looks at the model's
`additionalModelRequestFieldsSchema` (from Kiro's model list): a model that has one gets
`additionalModelRequestFields` (`thinking`, `output_config.effort`, `max_tokens`), checked against that
schema, so a value the model does not take is a 400 naming the client's parameter, never Kiro's refusal; a
model without one keeps the legacy prompt prefix (translate/thinking.py). See docs/api.md, "Thinking".
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..errors import InvalidRequest
from .fieldschema import Mismatch, first_mismatch, property_schema
from .history import Conversation

EFFORTS = ("low", "medium", "high", "xhigh", "max")  # Kiro's effort levels, least to most
# OpenAI's reasoning_effort (and OpenRouter's reasoning.effort) -> Kiro's level; "none" turns thinking off.
OPENAI_EFFORTS: dict[str, str | None] = {"none": None, "minimal": "low", "low": "low", "medium": "medium",
                                         "high": "high", "xhigh": "xhigh"}
# A token budget (Anthropic's budget_tokens, OpenRouter's reasoning.max_tokens) -> the effort it stands for,
# for models that take an effort level but no budget: up to 4,096 low, 16,384 medium, 32,768 high, more max.
BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"), (32768, "high"))
DEFAULT_DISPLAY = "summarized"  # clients show the thinking; "omitted" would send only its signature
UNSUPPORTED = "unsupported_value"


@dataclass(frozen=True)
class ReasoningAsk:
    """What a request asks of the model's reasoning, in Kiro's terms, with the client parameter behind each.

    `thinking`: "adaptive", "disabled" or None (not asked). An `implied` thinking (from an effort or a
    suffix) is left out for a model whose schema cannot take it; an explicit one is a 400 there.
    `effort_derived`: the effort stands for a token budget, so the nearest level the model takes is used.
    """

    thinking: str | None = None
    thinking_param: str = "thinking"
    implied: bool = False
    effort: str | None = None
    effort_param: str = ""
    effort_derived: bool = False
    display: str | None = None


def effort_for_budget(budget: int) -> str:
    """The effort level a thinking budget of `budget` tokens stands for."""
    return next((level for limit, level in BUDGET_EFFORTS if budget <= limit), "max")


def effort_ask(effort: str, param: str) -> ReasoningAsk:
    """OpenAI's effort word (already checked against OPENAI_EFFORTS) as an ask: thinking at that effort."""
    level = OPENAI_EFFORTS.get(effort, effort)
    if level is None:
        return ReasoningAsk(thinking="disabled", thinking_param=param, implied=True)
    return ReasoningAsk(thinking="adaptive", thinking_param=param, implied=True, effort=level, effort_param=param)


def _budget_ask(budget: Any, param: str, thinking_param: str) -> ReasoningAsk:
    ask = ReasoningAsk(thinking="adaptive", thinking_param=thinking_param)
    if isinstance(budget, int) and not isinstance(budget, bool):
        ask = replace(ask, effort=effort_for_budget(budget), effort_param=param, effort_derived=True)
    return ask


def thinking_ask(thinking: Mapping[str, Any]) -> ReasoningAsk:
    """Anthropic's `thinking` object (its type already checked) as an ask."""
    kind = thinking.get("type")
    if kind == "disabled":
        return ReasoningAsk(thinking="disabled", thinking_param="thinking.type")
    if kind == "enabled":  # Kiro has no "enabled": rendered as well as the model allows, so implied
        ask = replace(_budget_ask(thinking.get("budget_tokens"), "thinking.budget_tokens", "thinking.type"),
                      implied=True)
    else:
        ask = ReasoningAsk(thinking="adaptive", thinking_param="thinking.type")
    return replace(ask, display=thinking.get("display"))


def openai_ask(body: Mapping[str, Any], suffix: bool) -> ReasoningAsk:
    """What an OpenAI chat body asks, the first of thinking, reasoning, reasoning_effort, the suffix (validated
    by openai_request.thinking_budget first); `suffix`: the model name ended in `-thinking`."""
    thinking, reasoning = body.get("thinking"), body.get("reasoning")
    if isinstance(thinking, dict):
        return thinking_ask(thinking)
    if isinstance(reasoning, dict):
        if reasoning.get("enabled") is False:
            return ReasoningAsk(thinking="disabled", thinking_param="reasoning.enabled")
        if reasoning.get("max_tokens") is not None:
            return _budget_ask(reasoning["max_tokens"], "reasoning.max_tokens", "reasoning")
        if reasoning.get("effort") is not None:
            return effort_ask(reasoning["effort"], "reasoning.effort")
        return ReasoningAsk(thinking="adaptive", thinking_param="reasoning")
    if isinstance(body.get("reasoning_effort"), str):
        return effort_ask(body["reasoning_effort"], "reasoning_effort")
    return ReasoningAsk(thinking="adaptive", thinking_param="model", implied=True) if suffix else ReasoningAsk()


def anthropic_ask(body: Mapping[str, Any]) -> ReasoningAsk:
    """What an Anthropic Messages body asks with `thinking` (checked by anthropic_request) and `output_config`."""
    thinking, config = body.get("thinking"), body.get("output_config")
    ask = thinking_ask(thinking) if isinstance(thinking, dict) else ReasoningAsk()
    if config is None:
        return ask
    if not isinstance(config, dict):
        raise InvalidRequest("output_config: must be an object", param="output_config")
    effort = config.get("effort")
    if effort is None:
        return ask
    if not isinstance(effort, str):
        raise InvalidRequest("output_config.effort: must be a string", param="output_config.effort")
    return replace(ask, effort=effort, effort_param="output_config.effort", effort_derived=False)


def _nearest(level: str, allowed: Any) -> str | None:
    """`level` if allowed, else the nearest lower level allowed, else the nearest higher one."""
    if not isinstance(allowed, list):
        return level
    at = EFFORTS.index(level) if level in EFFORTS else len(EFFORTS) - 1
    return next((e for e in EFFORTS[at::-1] + EFFORTS[at + 1:] if e in allowed), None)


def _thinking_field(ask: ReasoningAsk, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    thinking: dict[str, Any] = {"type": ask.thinking}
    display_enum = (property_schema(schema, "thinking.display") or {}).get("enum")
    if ask.display is not None:
        thinking["display"] = ask.display
    elif ask.thinking == "adaptive" and isinstance(display_enum, list) and DEFAULT_DISPLAY in display_enum:
        thinking["display"] = DEFAULT_DISPLAY
    if ask.implied and first_mismatch({"thinking": {"type": ask.thinking}}, schema) is not None:
        return None  # an effort or a suffix asked; the model cannot take this thinking, so leave it to Kiro
    return thinking


def native_fields(ask: ReasoningAsk, schema: Mapping[str, Any], max_tokens: int | None,
                  model: str) -> dict[str, Any]:
    """`additionalModelRequestFields` for the ask; InvalidRequest naming the client's parameter and the
    values the model takes when the schema refuses what the client asked."""
    fields: dict[str, Any] = {}
    params: dict[str, str] = {}
    if ask.thinking is not None:
        thinking = _thinking_field(ask, schema)
        if thinking is not None:
            fields["thinking"] = thinking
            params.update({"thinking": ask.thinking_param, "thinking.type": ask.thinking_param,
                           "thinking.display": "thinking.display"})
    if ask.effort is not None:
        effort: str | None = ask.effort
        if ask.effort_derived:
            effort_schema = property_schema(schema, "output_config.effort")
            effort = _nearest(ask.effort, effort_schema.get("enum")) if effort_schema is not None else None
        if effort is not None:
            fields["output_config"] = {"effort": effort}
            params.update({"output_config": ask.effort_param, "output_config.effort": ask.effort_param})
    limit = property_schema(schema, "max_tokens")
    if max_tokens is not None and limit is not None:
        # The client's cap; Kiro's own range bounds it (ki2api still stops the answer at a lower cap itself).
        low, high = limit.get("minimum", max_tokens), limit.get("maximum", max_tokens)
        fields["max_tokens"] = max(low, min(high, max_tokens))
    mismatch = first_mismatch(fields, schema)
    if mismatch is not None:
        raise _refusal(mismatch, fields, params.get(mismatch.path, mismatch.path), model)
    return fields


def _refusal(mismatch: Mismatch, fields: dict[str, Any], param: str, model: str) -> InvalidRequest:
    value: Any = fields
    for key in filter(None, mismatch.path.split(".")):
        value = value.get(key) if isinstance(value, dict) else None
    allowed = ", ".join(map(str, mismatch.allowed))
    if mismatch.problem == "is not taken":
        what = f"takes no {mismatch.path!r}" + (f" (it takes {allowed})" if allowed else "")
    else:
        what = f"does not take {value!r} as {mismatch.path} ({mismatch.problem}" + (
            f": {allowed})" if allowed else ")")
    return InvalidRequest(f"{param}: model {model!r} {what}", param=param, code=UNSUPPORTED)


def apply_reasoning(conversation: Conversation, ask: ReasoningAsk, schema: Mapping[str, Any] | None,
                    model: str, max_tokens: int | None) -> None:
    """Native reasoning for a model whose `additionalModelRequestFieldsSchema` is `schema`: its fields, no
    prompt prefix, past thinking replayed signed. A model without a schema keeps the legacy prefix as parsed."""
    if not schema:
        return
    conversation.native_reasoning = True
    conversation.thinking_budget = None
    conversation.request_fields = native_fields(ask, schema, max_tokens, model) or None
