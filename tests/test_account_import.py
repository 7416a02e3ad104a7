"""`python -m ki2api import` and `accounts`: a kiro-cli database made with its table layout, an IDE token file
with its IdC registration, an API key and an account manager's export become stored accounts, once each."""
from __future__ import annotations

import io
import json
import sqlite3
import stat

import pytest

from ki2api.accounts.store import AccountStore
from ki2api.cli import main
from tests.helpers.credentials import write_token_file

API_KEY = "ksk_abcdefghij0123456789"


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.setenv("KIRO_TOKEN_FILE", str(tmp_path / "no-ide" / "kiro-auth-token.json"))
    return AccountStore(tmp_path / "state")


def kiro_cli_db(path, social=True, oidc=True):
    """A database with kiro-cli's auth_kv table and its keys (snake_case values)."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE auth_kv (key TEXT PRIMARY KEY, value TEXT)")
        if social:
            db.execute("INSERT INTO auth_kv VALUES (?, ?)", ("kirocli:social:token", json.dumps(
                {"access_token": "aoaAAAAAcli-social", "refresh_token": "aorAAAAAcli-social",
                 "expires_at": "2030-01-01T00:00:00Z", "profile_arn": "arn:aws:codewhisperer:us-east-1:1:profile/X"})))
        if oidc:
            db.execute("INSERT INTO auth_kv VALUES (?, ?)", ("kirocli:odic:token", json.dumps(
                {"access_token": "aoaAAAAAcli-oidc", "refresh_token": "aorAAAAAcli-oidc",
                 "expires_at": "2030-01-01T00:00:00+00:00", "region": "eu-central-1"})))
            db.execute("INSERT INTO auth_kv VALUES (?, ?)", ("kirocli:odic:device-registration", json.dumps(
                {"client_id": "cli-client", "client_secret": "cli-secret", "region": "eu-central-1"})))
    db.close()
    return path


def test_kiro_cli_database_gives_its_social_and_oidc_logins_once(state, tmp_path, capsys):
    database = kiro_cli_db(tmp_path / "data.sqlite3")
    assert main(["import", str(database)]) == 0
    assert main(["import", str(database)]) == 0
    out = capsys.readouterr().out
    assert out.count("imported") == 2 and out.count("already stored") == 2
    accounts = {s.name: s.entry for s in state.accounts()}
    assert set(accounts) == {"kiro-cli-social", "kiro-cli"}
    assert accounts["kiro-cli"] | {} == {**accounts["kiro-cli"], "authMethod": "IdC", "clientId": "cli-client",
                                         "clientSecret": "cli-secret", "region": "eu-central-1",
                                         "refreshToken": "aorAAAAAcli-oidc"}
    assert accounts["kiro-cli-social"]["authMethod"] == "social"
    assert accounts["kiro-cli"]["expiresAt"] == "2030-01-01T00:00:00.000Z"
    assert "aorAAAAAcli" not in out


def test_an_ide_idc_token_file_brings_its_client_registration(state, tmp_path):
    token = tmp_path / "sso" / "kiro-auth-token.json"
    write_token_file(token)
    data = json.loads(token.read_text())
    token.write_text(json.dumps({**data, "authMethod": "IdC", "clientIdHash": "abc123", "region": "us-east-1"}))
    (tmp_path / "sso" / "abc123.json").write_text(json.dumps({"clientId": "ide-client", "clientSecret": "ide-secret",
                                                              "expiresAt": "2030-01-01T00:00:00Z"}))
    assert main(["import", str(token), "--name", "work"]) == 0
    entry = state.get("work").entry
    assert entry["clientId"] == "ide-client" and entry["clientSecret"] == "ide-secret"
    assert entry["refreshToken"] == data["refreshToken"]


def test_an_idc_token_file_without_its_registration_says_what_to_copy(state, tmp_path, capsys):
    token = tmp_path / "kiro-auth-token.json"
    write_token_file(token)
    token.write_text(json.dumps({**json.loads(token.read_text()), "authMethod": "IdC", "clientIdHash": "nope"}))
    assert main(["import", str(token)]) == 1
    assert "client registration" in capsys.readouterr().err and state.accounts() == []


def test_an_api_key_from_stdin_is_stored_and_never_taken_from_the_command_line(state, monkeypatch, capsys):
    assert main(["import", API_KEY]) == 1
    assert "shell history" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(API_KEY + "\n"))
    assert main(["import", "-"]) == 0
    stored = state.get("api-key")
    assert stored.entry == {"name": "api-key", "enabled": True, "accessToken": API_KEY, "authMethod": "api_key"}
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert API_KEY not in capsys.readouterr().out


def test_an_account_manager_export_in_its_shapes(state, tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"accounts": [
        {"email": "ann@example.com", "credentials": {"refreshToken": "aorAAAAAann", "accessToken": "aoaAAAAAann",
                                                      "authMethod": "social"}},
        {"name": "bob", "refresh_token": "aorAAAAAbob", "client_id": "c", "client_secret": "s", "auth_method": "IdC"},
        {"name": "key", "kiroApiKey": API_KEY, "authMethod": "api_key"},
    ]}))
    assert main(["import", str(export)]) == 0
    accounts = {s.name: s.entry for s in state.accounts()}
    assert set(accounts) == {"ann@example.com", "bob", "key"}
    assert accounts["bob"]["clientSecret"] == "s" and accounts["bob"]["authMethod"] == "IdC"
    assert accounts["key"]["accessToken"] == API_KEY


def test_accounts_list_disable_enable_rename_remove(state, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(API_KEY))
    assert main(["import", "-"]) == 0
    assert main(["import", str(kiro_cli_db(tmp_path / "db.sqlite3", oidc=False))]) == 0
    capsys.readouterr()
    assert main(["accounts", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"api-key", "kiro-cli-social"}  # no IDE token file: the placeholder account is left out
    assert rows["api-key"]["kind"] == "api_key" and rows["api-key"]["state"] == "healthy"
    assert rows["kiro-cli-social"]["expires_at"] == "2030-01-01T00:00:00.000Z"
    assert main(["accounts", "disable", "api-key"]) == 0
    assert state.get("api-key").enabled is False
    assert main(["accounts", "list"]) == 0
    listing = capsys.readouterr().out
    assert "api-key" in listing and "off" in listing and API_KEY not in listing
    assert main(["accounts", "enable", "api-key"]) == 0 and state.get("api-key").enabled
    assert main(["accounts", "rename", "kiro-cli-social", "personal"]) == 0
    assert [s.name for s in state.accounts()] == ["api-key", "personal"]
    assert state.get("personal").entry["refreshToken"] == "aorAAAAAcli-social"
    path = state.get("personal").path
    assert main(["accounts", "remove", "personal"]) == 1  # asks; stdin is no terminal: not removed
    assert path.exists()
    assert main(["accounts", "remove", "personal", "--yes"]) == 0
    assert not path.exists() and [s.name for s in state.accounts()] == ["api-key"]
    assert main(["accounts", "show", "personal"]) == 1
