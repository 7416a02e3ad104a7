import json

import pytest

from ki2api.errors import ModelNotFound
from ki2api.models import BUILTIN, model_names, parse_model_list, resolve_model
from tests.helpers.fixtures import CAPTURE


@pytest.mark.parametrize("name,kiro_id", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
    ("claude-3-5-haiku-20241022", "claude-haiku-4.5"),
    ("claude-sonnet-4-5", "claude-sonnet-4.5"),
    ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("claude-opus-4-5", "claude-opus-4.5"),
    ("claude-sonnet-4", "claude-sonnet-4"),
    ("claude-sonnet-4-6", "claude-sonnet-4.6"),
    ("claude-opus-4-6", "claude-opus-4.6"),
    ("claude-opus-4-7", "claude-opus-4.7"),
    ("claude-sonnet-4.5", "claude-sonnet-4.5"),
])
def test_client_names_map_to_dotted_kiro_ids(name, kiro_id):
    model = resolve_model(name)
    assert model.kiro_id == kiro_id
    assert model.name == name
    assert name in model_names()


def test_context_window_is_larger_for_the_1m_models():
    assert resolve_model("claude-opus-4-6").context_window == 1_000_000
    assert resolve_model("claude-sonnet-4-5").context_window == 200_000


def test_claude_codes_1m_suffix_names_the_same_model_and_window():
    model = resolve_model("claude-sonnet-4-6[1m]")
    assert (model.kiro_id, model.context_window, model.name) == ("claude-sonnet-4.6", 1_000_000,
                                                                 "claude-sonnet-4-6[1m]")
    assert resolve_model("claude-opus-4-7[1M]").kiro_id == "claude-opus-4.7"


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ModelNotFound) as info:
        resolve_model("gpt-4o")
    assert "gpt-4o" in info.value.message
    assert "claude-sonnet-4-5-20250929" in info.value.message
    assert info.value.status == 404 and info.value.param == "model"


def test_the_builtin_table_is_the_captured_model_list():
    captured = json.loads((CAPTURE / "03.meta.json").read_text())["responseBody"]
    captured = json.loads(captured) if isinstance(captured, str) else captured
    assert list(BUILTIN) == [m["modelId"] for m in captured["models"]]
    opus = BUILTIN["claude-opus-4.7"]
    assert (opus.max_input_tokens, opus.max_output_tokens) == (1_000_000, 128_000)
    assert opus.request_fields_schema["properties"]["output_config"]["properties"]["effort"]["enum"][-1] == "max"
    assert BUILTIN["claude-sonnet-4.5"].request_fields_schema is None
    assert BUILTIN["minimax-m2.5"].input_types == ("TEXT",)


def test_context_window_follows_the_services_token_limits():
    assert resolve_model("claude-sonnet-4-5").context_window == 200_000
    assert resolve_model("claude-opus-4-7").context_window == 1_000_000


def test_a_model_list_entry_without_an_id_or_limits_is_handled():
    models = parse_model_list({"models": [{"modelName": "x"}, {"modelId": "m"}, "junk"]})
    assert list(models) == ["m"] and models["m"].max_input_tokens == 200_000
    assert models["m"].max_output_tokens is None and models["m"].request_fields_schema is None


LISTED = parse_model_list({"models": [{"modelId": i} for i in ("auto", "claude-opus-4.7", "claude-opus-4.8",
                                                               "claude-sonnet-4", "claude-3.7-sonnet", "glm-5")]})


@pytest.mark.parametrize("name,kiro_id", [
    ("claude-opus-4-7-20260101", "claude-opus-4.7"),  # Anthropic's dated names, generically
    ("claude-opus-4-8", "claude-opus-4.8"),  # a name in no table: dashes between digits become dots
    ("claude-opus-4-8-latest", "claude-opus-4.8"),
    ("claude-3-7-sonnet-20250219", "claude-3.7-sonnet"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("Claude-Opus-4.8", "claude-opus-4.8"),
    ("auto", "auto"),  # the real client's default
    ("glm-5", "glm-5"),  # a non-Claude model the service lists
])
def test_names_map_to_what_the_service_lists(name, kiro_id):
    model = resolve_model(name, LISTED)
    assert (model.name, model.kiro_id) == (name, kiro_id)
    assert model.info is LISTED[kiro_id]


def test_an_alias_whose_model_is_not_listed_is_not_served():
    with pytest.raises(ModelNotFound) as info:
        resolve_model("claude-sonnet-4-5-20250929", LISTED)
    assert "claude-opus-4.8" in info.value.message and "claude-sonnet-4.5" not in info.value.message


def test_model_names_list_each_name_once_and_only_listed_targets():
    names = model_names(LISTED)
    assert len(names) == len(set(names))
    assert names.count("claude-sonnet-4") == 1
    assert "claude-opus-4-7" in names and "claude-sonnet-4-5" not in names
    assert names[-len(LISTED):] == list(LISTED)  # the service's ids, in its order, after the client names
    builtin = model_names()
    assert len(builtin) == len(set(builtin)) and "auto" in builtin and "deepseek-3.2" in builtin


def test_auto_and_the_non_claude_models_are_in_the_builtin_table():
    assert resolve_model("auto").context_window == 1_000_000
    assert resolve_model("qwen3-coder-next").kiro_id == "qwen3-coder-next"
