import pytest

from ki2api.settings import DEFAULT_API_KEY, ConfigError, Settings


def test_defaults_match_the_documented_contract():
    s = Settings.from_env({})
    assert s.port == 8989
    assert s.api_keys == (DEFAULT_API_KEY,)
    assert s.uses_default_key
    assert s.token_file.endswith(".aws/sso/cache/kiro-auth-token.json")
    assert s.api_base == "https://q.us-east-1.amazonaws.com"
    assert s.refresh_url == "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken"
    assert s.oidc_url == "https://oidc.us-east-1.amazonaws.com/token"
    assert s.workers == 1


def test_reads_every_variable():
    s = Settings.from_env({
        "PORT": "9000", "HOST": "127.0.0.1", "API_KEY": " a , b ,", "KIRO_TOKEN_FILE": "/tmp/t.json",
        "KIRO_ACCESS_TOKEN": "at", "KIRO_REFRESH_TOKEN": "rt", "KIRO_API_BASE": "http://127.0.0.1:1/",
        "KIRO_REFRESH_URL": "http://127.0.0.1:1/r", "KIRO_OIDC_URL": "http://127.0.0.1:1/t",
        "KIRO_PROFILE_ARN": "arn:x", "WEB_CONCURRENCY": "4", "UPSTREAM_READ_TIMEOUT": "12.5",
        "LOG_LEVEL": "debug",
    })
    assert (s.port, s.host, s.api_keys) == (9000, "127.0.0.1", ("a", "b"))
    assert not s.uses_default_key
    assert (s.access_token, s.refresh_token, s.profile_arn) == ("at", "rt", "arn:x")
    assert s.api_base == "http://127.0.0.1:1"
    assert (s.workers, s.read_timeout, s.log_level) == (4, 12.5, "DEBUG")


@pytest.mark.parametrize("name,value", [
    ("PORT", "eighty"), ("WEB_CONCURRENCY", "0"), ("UPSTREAM_READ_TIMEOUT", "-1"),
    ("KIRO_API_BASE", "q.us-east-1.amazonaws.com"), ("API_KEY", " , "), ("LOG_LEVEL", "LOUD"),
])
def test_bad_values_fail_fast_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
