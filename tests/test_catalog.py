"""The model catalog through Flask's test client against the fake Kiro (real HTTP): each account's
ListAvailableModels, the union served on /v1/models, routing by entitlement, INVALID_MODEL_ID failover,
the built-in fallback and what /health says of it. The tests drive the fetch rounds themselves (poll_once)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from ki2api.app import create_app
from ki2api.models import BUILTIN
from tests.helpers.accounts import fake_accounts, write_token_dir

HAIKU_ONLY = ["claude-haiku-4.5", "auto"]
EVERYTHING = ["auto", "claude-opus-4.7", "claude-sonnet-4.5", "claude-haiku-4.5", "glm-5", "claude-opus-5"]


@pytest.fixture
def pool_dir(tmp_path):
    return tmp_path / "pool"


def start(settings, pool_dir, *names):
    write_token_dir(pool_dir, *names)
    app = create_app(replace(settings, token_dir=str(pool_dir)))
    return app, app.test_client()


def chat(client, auth, model, **extra):
    return client.post("/v1/chat/completions", headers=auth,
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


def served(fake, name):
    return fake.stats()["accounts"][name]["chat_requests"]


def listed(client, auth):
    response = client.get("/v1/models", headers=auth)
    assert response.status_code == 200
    return [m["id"] for m in response.get_json()["data"]]


def test_each_accounts_list_is_fetched_and_the_union_is_served(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": HAIKU_ONLY}, b={"models": EVERYTHING}))
    app, client = start(settings, pool_dir, "a", "b")
    assert app.extensions["ki2api"].catalog.poll_once() == 2
    stats = fake_upstream.stats()["accounts"]
    assert (stats["a"]["models_calls"], stats["b"]["models_calls"]) == (1, 1)
    ids = listed(client, auth)
    assert len(ids) == len(set(ids))  # each name once
    for name in EVERYTHING + ["claude-opus-4-7", "claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"]:
        assert name in ids
    assert "claude-opus-4.6" not in ids and "claude-opus-4-6" not in ids  # no account lists it
    report = client.get("/health").get_json()["models"]
    assert report["source"] == "service" and report["why"] is None
    assert {row["name"]: row["models"] for row in report["accounts"]} == {"a": HAIKU_ONLY, "b": EVERYTHING}
    assert all(row["fetched_at"] for row in report["accounts"])


def test_a_model_only_one_account_lists_goes_to_that_account(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": HAIKU_ONLY}, b={"models": EVERYTHING}))
    app, client = start(settings, pool_dir, "a", "b")
    app.extensions["ki2api"].catalog.poll_once()
    for _ in range(6):
        assert chat(client, auth, "claude-opus-4-7").status_code == 200
    assert (served(fake_upstream, "a"), served(fake_upstream, "b")) == (0, 6)
    assert chat(client, auth, "claude-opus-5").status_code == 200  # a new model: listed, so served as it is
    assert served(fake_upstream, "b") == 7


def test_auto_and_the_non_claude_models_are_served(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["hi"]}, {"texts": ["ni hao"]})
    for model in ("auto", "glm-5"):
        response = chat(client, auth, model)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["model"] == model
        sent = fake_upstream.requests()[-1]["body"]["conversationState"]["currentMessage"]["userInputMessage"]
        assert sent["modelId"] == model


def test_a_model_no_account_lists_is_a_404_naming_the_servable_ones(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": HAIKU_ONLY}, b={"models": ["glm-5"]}))
    app, client = start(settings, pool_dir, "a", "b")
    app.extensions["ki2api"].catalog.poll_once()
    response = chat(client, auth, "claude-opus-4-7")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "claude-opus-4-7" in error["message"]
    assert "claude-haiku-4.5" in error["message"] and "glm-5" in error["message"]
    assert "claude-opus-4.7" not in error["message"].split("Valid models:")[1]
    assert fake_upstream.stats()["chat_requests"] == 0  # refused before any call


def test_an_invalid_model_refusal_marks_the_account_for_that_model_and_fails_over(settings, pool_dir,
                                                                                  fake_upstream, auth):
    # No lists fetched: both accounts are assumed to serve everything; Kiro refuses a the model it lacks.
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"models": HAIKU_ONLY}))
    app, client = start(settings, pool_dir, "a", "b")

    def refusals():
        return [r for r in fake_upstream.requests() if r.get("account") == "a" and r["status"] == 400]

    sent = 0
    while not refusals() and sent < 60:  # random tie-breaks decide when a is first asked
        response = chat(client, auth, "claude-opus-4-7")
        assert response.status_code == 200, response.get_data(as_text=True)
        sent += 1
    assert len(refusals()) == 1
    for _ in range(6):
        assert chat(client, auth, "claude-opus-4-7").status_code == 200
    assert len(refusals()) == 1  # a is not asked for that model again
    assert served(fake_upstream, "b") == sent + 6
    report = client.get("/health").get_json()
    assert next(r for r in report["models"]["accounts"] if r["name"] == "a")["refused"] == ["claude-opus-4.7"]
    a = next(r for r in report["accounts"] if r["name"] == "a")
    assert a["state"] == "healthy"  # rested for that model only
    assert chat(client, auth, "claude-haiku-4-5").status_code == 200


def test_the_only_account_refusing_a_model_is_a_404(client, auth, fake_upstream):
    fake_upstream.reset(models=HAIKU_ONLY)
    response = chat(client, auth, "claude-opus-4-7")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "model_not_found"
    assert "claude-haiku-4.5" in response.get_json()["error"]["message"]
    assert chat(client, auth, "claude-haiku-4-5").status_code == 200


def test_the_context_window_comes_from_the_services_token_limits(settings, pool_dir, fake_upstream, auth):
    big = {"modelId": "claude-sonnet-4.5", "modelName": "claude-sonnet-4.5",
           "tokenLimits": {"maxInputTokens": 400000, "maxOutputTokens": 32000}}
    fake_upstream.reset(accounts=fake_accounts("a", a={"models": [big]}))
    app, client = start(settings, pool_dir, "a")
    app.extensions["ki2api"].catalog.poll_once()
    fake_upstream.script({"texts": ["ok"], "context_usage": 2.0})
    body = chat(client, auth, "claude-sonnet-4-5").get_json()
    assert body["usage"]["prompt_tokens"] == 8000  # 2% of the listed 400k, not the built-in 200k
    model = next(m for m in client.get("/v1/models", headers=auth).get_json()["data"] if m["id"] == "claude-sonnet-4.5")
    assert (model["context_window"], model["max_output_tokens"]) == (400000, 32000)


def test_a_paged_answer_is_followed_to_its_end(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a"), models_page=5)
    app, client = start(settings, pool_dir, "a")
    assert app.extensions["ki2api"].catalog.poll_once() == 1
    assert fake_upstream.stats()["accounts"]["a"]["models_calls"] == 3  # 13 models, 5 a page
    served_ids = client.get("/health").get_json()["models"]["served"]
    assert served_ids == list(BUILTIN)


def test_an_unreachable_service_falls_back_to_the_builtin_table_and_says_so(client, auth, fake_upstream, app):
    fake_upstream.reset(models_status=503)
    assert app.extensions["ki2api"].catalog.poll_once() == 0
    report = client.get("/health").get_json()
    assert report["status"] == "degraded"
    assert report["models"]["source"] == "builtin" and "HTTP 503" in report["models"]["why"]
    assert any("built-in model table" in w for w in report["warnings"])
    assert "claude-sonnet-4.5" in listed(client, auth)
    assert chat(client, auth, "claude-sonnet-4-5").status_code == 200


def test_without_fetching_the_builtin_table_serves_and_health_says_why(client, auth):
    report = client.get("/health").get_json()
    assert report["models"]["source"] == "builtin" and "KIRO_MODELS_INTERVAL is 0" in report["models"]["why"]
    assert report["status"] == "ok"


def test_other_workers_read_the_list_one_of_them_fetched(settings, pool_dir, fake_upstream, auth):
    fake_upstream.reset(accounts=fake_accounts("a", a={"models": HAIKU_ONLY}))
    one, _ = start(settings, pool_dir, "a")
    two = create_app(replace(settings, token_dir=str(pool_dir)))  # a second worker on the same state directory
    assert one.extensions["ki2api"].catalog.poll_once() == 1
    assert listed(two.test_client(), auth) == ["claude-3-5-haiku-20241022", "claude-haiku-4-5-20251001",
                                              "claude-haiku-4-5", "claude-haiku-4.5", "auto"]
    assert fake_upstream.stats()["accounts"]["a"]["models_calls"] == 1


def test_input_tokens_of_a_captured_auto_answer_use_autos_1m_window(client, auth, fake_upstream):
    # Capture row 06 answered an `auto` request with contextUsagePercentage 1.938 (of auto's 1M-token window).
    fake_upstream.script({"fixture": "06"})
    body = chat(client, auth, "auto").get_json()
    assert body["usage"]["prompt_tokens"] == 19_380  # with a 200k window it would be 3,876: too low by 5x
