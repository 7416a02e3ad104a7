"""Account configuration: the single token file by default, an accounts file, a token directory."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ki2api.accounts.config import AccountSpec, account_specs
from ki2api.settings import ConfigError, Settings
from tests.helpers.credentials import write_token_file


def test_without_a_pool_there_is_one_default_account(tmp_path):
    settings = Settings(token_file=str(tmp_path / "t.json"))
    assert account_specs(settings) == [AccountSpec("default", token_file=str(tmp_path / "t.json"))]


def test_accounts_file_with_token_files_and_inline_credentials(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([
        {"name": "alice", "tokenFile": "alice/kiro-auth-token.json", "weight": 2},
        {"name": "bob", "refreshToken": "aorAAAAAbob", "authMethod": "social"},
        {"refreshToken": "aorAAAAAcarol", "authMethod": "IdC", "clientId": "c", "clientSecret": "s",
         "enabled": False},
    ]))
    specs = account_specs(Settings(accounts_file=str(path)))
    assert specs == [
        AccountSpec("alice", 2.0, True, token_file=str(tmp_path / "alice" / "kiro-auth-token.json")),
        AccountSpec("bob", 1.0, True, accounts_file=str(path)),
        AccountSpec("account-3", 1.0, False, accounts_file=str(path)),
    ]


def test_accounts_object_form_is_accepted(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"accounts": [{"name": "x", "refreshToken": "aorAAAAAx"}]}))
    assert [s.name for s in account_specs(Settings(accounts_file=str(path)))] == ["x"]


@pytest.mark.parametrize("content, words", [
    ("{not json", "not valid JSON"),
    ('{"name": "x"}', "JSON list"),
    ('[{"name": "x"}]', "needs tokenFile or at least refreshToken"),
    ('[{"name": "x", "refreshToken": "r", "weigth": 2}]', "unknown fields ['weigth']"),
    ('[{"name": "x", "refreshToken": "r", "weight": 0}]', "weight must be"),
    ('[{"name": "x y", "refreshToken": "r"}]', "name must be"),
    ('[{"name": "x", "refreshToken": "r", "enabled": "yes"}]', "enabled must be true or false"),
    ('[{"name": "x", "tokenFile": "t.json", "refreshToken": "r"}]', "either tokenFile"),
    ('[{"name": "x", "refreshToken": "r"}, {"name": "x", "refreshToken": "s"}]', "repeated: ['x']"),
])
def test_bad_accounts_files_fail_fast_naming_the_variable_and_the_entry(tmp_path, content, words):
    path = tmp_path / "accounts.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        account_specs(Settings(accounts_file=str(path)))
    assert "KIRO_ACCOUNTS_FILE" in str(info.value) and words in str(info.value)


def test_token_dir_takes_each_token_file_and_skips_idc_registrations(tmp_path):
    write_token_file(tmp_path / "work.json")
    write_token_file(tmp_path / "home account.json")
    (tmp_path / "a1b2c3d4.json").write_text(json.dumps({"clientId": "c", "clientSecret": "s"}))
    (tmp_path / ".work.json.1234.tmp").write_text("{}")
    (tmp_path / "notes.txt").write_text("not an account")
    specs = account_specs(Settings(token_dir=str(tmp_path)))
    assert [(s.name, s.token_file) for s in specs] == [("home_account", str(tmp_path / "home account.json")),
                                                      ("work", str(tmp_path / "work.json"))]


def test_token_dir_and_accounts_file_combine_with_unique_names(tmp_path):
    write_token_file(tmp_path / "dir" / "a.json")
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([{"name": "a", "refreshToken": "r"}]))
    settings = Settings(accounts_file=str(path), token_dir=str(tmp_path / "dir"))
    with pytest.raises(ConfigError, match="unique"):
        account_specs(settings)
    path.write_text(json.dumps([{"name": "b", "refreshToken": "r"}]))
    assert [s.name for s in account_specs(settings)] == ["b", "a"]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_unusable_token_dir_fails_fast(tmp_path, make):
    directory = tmp_path / "tokens"
    if make == "empty":
        directory.mkdir()
    with pytest.raises(ConfigError, match="KIRO_TOKEN_DIR"):
        account_specs(replace(Settings(), token_dir=str(directory)))


def test_pool_settings_are_read_from_the_environment():
    s = Settings.from_env({"KIRO_TOKEN_DIR": "/t", "KIRO_ACCOUNTS_FILE": "/a.json", "REDIS_URL": "redis://r:6379/1",
                           "KI2API_REDIS_PREFIX": "prod", "KIRO_USAGE_INTERVAL": "0", "KIRO_COOLDOWN_BASE": "2",
                           "KIRO_COOLDOWN_MAX": "60", "KIRO_QUOTA_COOLDOWN": "7200"})
    assert (s.token_dir, s.accounts_file, s.redis_url, s.redis_prefix) == ("/t", "/a.json", "redis://r:6379/1", "prod")
    assert (s.usage_interval, s.cooldown_base, s.cooldown_max, s.quota_cooldown) == (0.0, 2.0, 60.0, 7200.0)
    defaults = Settings.from_env({})
    assert (defaults.redis_url, defaults.usage_interval, defaults.quota_cooldown) == (None, 900.0, 3600.0)


@pytest.mark.parametrize("name, value", [("REDIS_URL", "localhost:6379"), ("KIRO_USAGE_INTERVAL", "-5"),
                                         ("KIRO_COOLDOWN_BASE", "soon")])
def test_bad_pool_settings_fail_fast(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_a_bad_redis_url_never_echoes_a_password():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "http://user:hunter2@redis:6379"})
    assert "hunter2" not in str(info.value)
