from ki2api.web.auth import key_is_valid, presented_key


def test_bearer_and_x_api_key_are_both_read():
    assert presented_key({"Authorization": "Bearer k1"}) == "k1"
    assert presented_key({"Authorization": "bearer  k1 "}) == "k1"
    assert presented_key({"x-api-key": "k2"}) == "k2"
    assert presented_key({}) is None


def test_any_configured_key_is_accepted_and_nothing_else():
    keys = ("alpha", "beta")
    assert key_is_valid("alpha", keys)
    assert key_is_valid("beta", keys)
    assert not key_is_valid("alph", keys)
    assert not key_is_valid("", keys)
    assert not key_is_valid(None, keys)
    assert not key_is_valid("ALPHA", keys)
