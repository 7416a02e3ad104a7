import pytest

from ki2api.errors import ModelNotFound
from ki2api.models import model_names, resolve_model


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
