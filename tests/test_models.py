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
