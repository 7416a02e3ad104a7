"""GET /v1/models and /v1/models/{name} in both shapes, through Flask's test client."""
from __future__ import annotations

import pytest

from ki2api.models import BUILTIN
from tests.helpers.openai_schema import validate

ANTHROPIC = {"anthropic-version": "2023-06-01"}


def test_the_openai_list_has_each_name_once_with_the_services_limits(client, auth):
    body = client.get("/v1/models", headers=auth).get_json()
    validate(body, "ListModelsResponse")
    ids = [m["id"] for m in body["data"]]
    assert len(ids) == len(set(ids))
    assert ids.count("claude-sonnet-4") == 1
    for kiro_id in BUILTIN:
        assert kiro_id in ids
    by_id = {m["id"]: m for m in body["data"]}
    opus = by_id["claude-opus-4-7"]
    assert (opus["kiro_id"], opus["context_window"], opus["max_output_tokens"]) == ("claude-opus-4.7", 1_000_000,
                                                                                    128_000)
    assert by_id["claude-sonnet-4.5"]["context_window"] == 200_000
    assert by_id["glm-5"]["owned_by"] == "kiro" and by_id["claude-haiku-4.5"]["owned_by"] == "anthropic"


def test_one_model_in_openai_shape(client, auth):
    body = client.get("/v1/models/auto", headers=auth).get_json()
    validate(body, "Model")
    assert (body["id"], body["context_window"]) == ("auto", 1_000_000)
    missing = client.get("/v1/models/gpt-4o", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "model_not_found"


def test_an_anthropic_client_gets_anthropics_shape(client, auth):
    body = client.get("/v1/models", headers={**auth, **ANTHROPIC}).get_json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    assert len(body["data"]) == 20 and body["has_more"] is True  # Anthropic's default page
    first = body["data"][0]
    assert first["type"] == "model" and first["created_at"] == "2025-01-01T00:00:00Z"
    assert (body["first_id"], body["last_id"]) == (first["id"], body["data"][-1]["id"])
    one = client.get("/v1/models/claude-opus-4.7", headers={**auth, **ANTHROPIC}).get_json()
    assert (one["type"], one["id"], one["display_name"]) == ("model", "claude-opus-4.7", "Claude Opus 4.7")


def test_anthropic_paging_walks_the_whole_list_once(client, auth):
    everything = [m["id"] for m in client.get("/v1/models", headers=auth).get_json()["data"]]
    seen, after = [], None
    while True:
        query = {"limit": 7, **({"after_id": after} if after else {})}
        page = client.get("/v1/models", headers={**auth, **ANTHROPIC}, query_string=query).get_json()
        seen += [m["id"] for m in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == everything
    back = client.get("/v1/models", headers={**auth, **ANTHROPIC},
                      query_string={"limit": 3, "before_id": everything[5]}).get_json()
    assert [m["id"] for m in back["data"]] == everything[2:5] and back["has_more"] is True


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": "x"}, {"after_id": "nope"}])
def test_a_bad_anthropic_page_request_is_a_400_in_anthropics_envelope(client, auth, query):
    response = client.get("/v1/models", headers={**auth, **ANTHROPIC}, query_string=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404_in_anthropics_envelope(client, auth):
    response = client.get("/v1/models/gpt-4o", headers={**auth, **ANTHROPIC})
    assert response.status_code == 404
    assert response.get_json()["error"]["type"] == "not_found_error"
