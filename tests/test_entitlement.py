"""Which models an account may use, from its shared fields (pure)."""
from ki2api.accounts.entitlement import ListCache, listed_ids, may_serve, refused_ids, servable_ids
from ki2api.models import BUILTIN

NOW = 1_000_000.0
LISTED = {"models": {"fetched_at": NOW - 10, "ids": ["auto", "glm-5"],
                     "models": [{"modelId": "auto", "tokenLimits": {"maxInputTokens": 1000000}}, {"modelId": "glm-5"}]}}


def test_an_account_without_a_list_may_serve_anything_until_kiro_refuses_it():
    assert listed_ids({}) is None and may_serve({}, "claude-opus-4.7", NOW)
    refused = {"model_refusals": {"claude-opus-4.7": {"at": NOW - 5, "until": NOW + 5, "message": "Invalid model."}}}
    assert not may_serve(refused, "claude-opus-4.7", NOW) and may_serve(refused, "auto", NOW)
    assert may_serve(refused, "claude-opus-4.7", NOW + 6)  # the mark has run out
    assert refused_ids(refused, NOW + 6) == set()


def test_a_listed_account_serves_only_its_list():
    assert listed_ids(LISTED) == ["auto", "glm-5"]
    assert may_serve(LISTED, "glm-5", NOW) and not may_serve(LISTED, "claude-opus-4.7", NOW)
    failed_first = {"models": {"error": "HTTP 503", "failed_at": NOW}}  # no list yet: nothing known
    assert listed_ids(failed_first) is None


def test_servable_ids_join_the_lists_less_the_refusals():
    refused = {**LISTED, "model_refusals": {"glm-5": {"until": NOW + 1}}}
    assert servable_ids([refused], NOW) == ["auto"]
    assert servable_ids([refused, {}], NOW) == ["auto"] + [i for i in BUILTIN if i != "auto"]


def test_a_list_is_parsed_once_per_fetch():
    cache = ListCache()
    first = cache.models("a", LISTED)
    assert first["auto"].max_input_tokens == 1_000_000 and cache.models("a", LISTED) is first
    newer = {"models": {**LISTED["models"], "fetched_at": NOW}}
    assert cache.models("a", newer) is not first and cache.models("b", {}) is None
