"""translate/reasoning.py and translate/fieldschema.py: the clients' reasoning controls -> Kiro's native fields,
checked against the model's schema from the captured model list."""
import pytest

from ki2api.errors import InvalidRequest
from ki2api.models import BUILTIN
from ki2api.translate.fieldschema import first_mismatch, property_schema
from ki2api.translate.history import Conversation, Turn
from ki2api.translate.reasoning import (anthropic_ask, apply_reasoning, effort_for_budget, native_fields,
                                        openai_ask)

SONNET = BUILTIN["claude-sonnet-4.6"].request_fields_schema  # effort low/medium/high/max, max_tokens <= 64000
OPUS = BUILTIN["claude-opus-4.7"].request_fields_schema  # also xhigh, max_tokens <= 128000
ADAPTIVE = {"type": "adaptive", "display": "summarized"}


def openai(body, schema=SONNET, max_tokens=None, suffix=False):
    return native_fields(openai_ask(body, suffix), schema, max_tokens, "claude-sonnet-4-6")


def anthropic(body, schema=SONNET, max_tokens=4096):
    return native_fields(anthropic_ask(body), schema, max_tokens, "claude-sonnet-4-6")


@pytest.mark.parametrize("effort, expected", [
    ("low", {"thinking": ADAPTIVE, "output_config": {"effort": "low"}}),
    ("minimal", {"thinking": ADAPTIVE, "output_config": {"effort": "low"}}),
    ("high", {"thinking": ADAPTIVE, "output_config": {"effort": "high"}}),
    ("none", {"thinking": {"type": "disabled"}}),
])
def test_openai_reasoning_effort(effort, expected):
    assert openai({"reasoning_effort": effort}) == expected


def test_openrouter_reasoning_and_the_suffix():
    assert openai({"reasoning": {"effort": "medium"}})["output_config"] == {"effort": "medium"}
    assert openai({"reasoning": {"max_tokens": 30000}})["output_config"] == {"effort": "high"}
    assert openai({"reasoning": {"enabled": False}}) == {"thinking": {"type": "disabled"}}
    assert openai({"reasoning": {}}) == {"thinking": ADAPTIVE}
    assert openai({}, suffix=True) == {"thinking": ADAPTIVE}
    assert openai({}) == {}


def test_an_effort_the_model_does_not_take_is_a_400_naming_the_parameter_and_the_values():
    with pytest.raises(InvalidRequest) as info:
        openai({"reasoning_effort": "xhigh"})
    assert info.value.param == "reasoning_effort" and info.value.code == "unsupported_value"
    assert "claude-sonnet-4-6" in info.value.message and "low, medium, high, max" in info.value.message
    assert openai({"reasoning_effort": "xhigh"}, schema=OPUS)["output_config"] == {"effort": "xhigh"}
    with pytest.raises(InvalidRequest) as info:
        openai({"reasoning": {"effort": "xhigh"}})
    assert info.value.param == "reasoning.effort"


def test_anthropic_thinking_and_effort():
    assert anthropic({"thinking": {"type": "adaptive"}}) == {"thinking": ADAPTIVE, "max_tokens": 4096}
    assert anthropic({"thinking": {"type": "disabled"}}) == {"thinking": {"type": "disabled"}, "max_tokens": 4096}
    assert anthropic({"thinking": {"type": "adaptive", "display": "omitted"}})["thinking"] == {
        "type": "adaptive", "display": "omitted"}
    assert anthropic({"output_config": {"effort": "max"}}) == {"output_config": {"effort": "max"},
                                                               "max_tokens": 4096}
    # budget_tokens: the model takes no budget, so adaptive thinking at the effort the budget stands for
    enabled = anthropic({"thinking": {"type": "enabled", "budget_tokens": 10000}})
    assert enabled == {"thinking": ADAPTIVE, "output_config": {"effort": "medium"}, "max_tokens": 4096}
    # an explicit effort wins over the budget's
    both = anthropic({"thinking": {"type": "enabled", "budget_tokens": 2000}, "output_config": {"effort": "high"}})
    assert both["output_config"] == {"effort": "high"}


def test_anthropic_values_the_model_does_not_take():
    with pytest.raises(InvalidRequest) as info:
        anthropic({"output_config": {"effort": "xhigh"}})
    assert info.value.param == "output_config.effort" and "low, medium, high, max" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        anthropic({"thinking": {"type": "adaptive", "display": "full"}})
    assert info.value.param == "thinking.display" and "summarized, omitted" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        anthropic({"thinking": {"type": "enabled", "budget_tokens": 2048, "display": "full"}})
    assert info.value.param == "thinking.display"
    with pytest.raises(InvalidRequest) as info:
        anthropic({"output_config": "high"})
    assert info.value.param == "output_config"


def test_a_budget_beyond_the_models_levels_takes_the_nearest_one_it_has():
    no_xhigh = {"type": "object", "properties": {"output_config": {"type": "object", "properties": {
        "effort": {"type": "string", "enum": ["low", "medium", "high"]}}}}, "additionalProperties": False}
    # enabled has no native form: rendered as well as the model allows, here an effort alone
    assert anthropic({"thinking": {"type": "enabled", "budget_tokens": 60000}}, no_xhigh) == {
        "output_config": {"effort": "high"}}
    assert [effort_for_budget(b) for b in (1024, 4096, 4097, 16384, 32768, 32769)] == [
        "low", "low", "medium", "medium", "high", "max"]


def test_an_explicit_thinking_the_schema_lacks_is_refused_an_implied_one_left_out():
    effort_only = {"type": "object", "properties": {"output_config": {"type": "object", "properties": {
        "effort": {"type": "string", "enum": ["low", "high"]}}}}, "additionalProperties": False}
    assert openai({"reasoning_effort": "high"}, effort_only) == {"output_config": {"effort": "high"}}
    with pytest.raises(InvalidRequest) as info:
        anthropic({"thinking": {"type": "adaptive"}}, effort_only)
    assert info.value.param == "thinking.type" and "output_config" in info.value.message


@pytest.mark.parametrize("max_tokens, sent", [(100, 1024), (8000, 8000), (200000, 64000)])
def test_max_tokens_goes_upstream_within_the_models_range(max_tokens, sent):
    assert openai({}, max_tokens=max_tokens) == {"max_tokens": sent}


def test_apply_reasoning_native_and_legacy():
    native = Conversation(system="", turns=[Turn("user", "hi")], thinking_budget=4096)
    apply_reasoning(native, openai_ask({"reasoning_effort": "low"}, False), SONNET, "claude-sonnet-4-6", None)
    assert native.native_reasoning and native.thinking_budget is None
    assert native.request_fields == {"thinking": ADAPTIVE, "output_config": {"effort": "low"}}
    legacy = Conversation(system="", turns=[Turn("user", "hi")], thinking_budget=4096)
    apply_reasoning(legacy, openai_ask({"reasoning_effort": "low"}, False), None, "claude-sonnet-4-5", 100)
    assert not legacy.native_reasoning and legacy.thinking_budget == 4096 and legacy.request_fields is None
    nothing = Conversation(system="", turns=[Turn("user", "hi")])
    apply_reasoning(nothing, openai_ask({}, False), SONNET, "claude-sonnet-4-6", None)
    assert nothing.native_reasoning and nothing.request_fields is None


def test_first_mismatch_covers_the_subset_kiro_uses():
    assert first_mismatch({"thinking": {"type": "adaptive"}, "max_tokens": 2048}, SONNET) is None
    cases = [({"max_tokens": 100}, "max_tokens", "between"), ({"max_tokens": True}, "max_tokens", "integer"),
             ({"max_tokens": 2048.5}, "max_tokens", "integer"), ({"thinking": {}}, "thinking.type", "required"),
             ({"thinking": {"type": "enabled"}}, "thinking.type", "allowed"), ({"top_k": 5}, "top_k", "not taken"),
             ("x", "", "object")]
    for value, path, words in cases:
        mismatch = first_mismatch(value, SONNET)
        assert mismatch is not None and mismatch.path == path and words in mismatch.problem, (value, mismatch)
    assert first_mismatch({"output_config": {"effort": "xhigh"}}, SONNET).allowed == ("low", "medium", "high", "max")
    assert property_schema(SONNET, "output_config.effort")["enum"][0] == "low"
    assert property_schema(SONNET, "output_config.nothing") is None and property_schema(None, "x") is None
