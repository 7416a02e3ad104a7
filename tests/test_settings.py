"""Settings.from_env, the default-key warning, and gunicorn's variables as config/gunicorn.conf.py checks them."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ki2api.settings import DEFAULT_API_KEY, ConfigError, Settings, is_loopback
from tests.helpers.gateway import GUNICORN, REPO, free_port


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


# --- the start-up warning about the default key ------------------------------------------------------------------

def test_the_default_key_warning_is_loud_only_for_addresses_beyond_loopback():
    settings = Settings.from_env({})
    quiet = settings.default_key_warning([("127.0.0.1", 8989), ("::1", 8989), ("localhost", 1)])
    assert quiet == "API_KEY is the public default 'ki2api-key-2024'; set your own key"
    loud = settings.default_key_warning([("127.0.0.1", 8989), ("0.0.0.0", 8989), ("::", 9000)])
    assert loud.startswith("SECURITY: API_KEY is the public default 'ki2api-key-2024' and ki2api listens on "
                           "0.0.0.0:8989, [::]:9000, beyond loopback")
    assert Settings.from_env({"API_KEY": "my-own-key"}).default_key_warning([("0.0.0.0", 8989)]) is None
    assert Settings.from_env({"API_KEY": f"my-own-key,{DEFAULT_API_KEY}"}).default_key_warning([]) is not None


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                                           ("[::1]", True), ("LOCALHOST", True), ("0.0.0.0", False),
                                           ("::", False), ("192.168.1.5", False), ("example.com", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_importing_the_settings_loads_no_web_library():
    """gunicorn's master imports ki2api.settings before forking; flask, requests and gevent load in the workers."""
    code = ("import sys, ki2api.settings; print(sorted(m for m in ('flask', 'werkzeug', 'requests', 'urllib3', "
            "'gevent', 'prometheus_client', 'ssl') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- gunicorn's own variables, checked by config/gunicorn.conf.py ------------------------------------------------

def run_gunicorn(tmp_path, env: dict[str, str], dotenv: str = "") -> subprocess.CompletedProcess:
    """Start gunicorn with the shipped config and `env` (plus a .env holding `dotenv`); it should not get far."""
    (tmp_path / "dotenv").write_text(dotenv)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "KI2API_", "API_KEY"))}
    full.update(HOST="127.0.0.1", PORT=str(free_port()), KI2API_DOTENV=str(tmp_path / "dotenv"),
                KI2API_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(REPO))
    full.update(env)
    return subprocess.run(GUNICORN, cwd=REPO, env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.integration
@pytest.mark.parametrize("env,dotenv,message", [
    ({}, "WEB_CONCURRENCY=two\n", "WEB_CONCURRENCY must be an integer, got 'two'"),
    ({"GUNICORN_TIMEOUT": "soon"}, "", "GUNICORN_TIMEOUT must be an integer, got 'soon'"),
    ({"KEEPALIVE": "-1"}, "", "KEEPALIVE must be at least 0, got -1"),
    ({"PORT": "eighty"}, "", "PORT must be an integer, got 'eighty'"),
    ({"LOG_FORMAT": "xml"}, "", "LOG_FORMAT must be one of logfmt, json, got 'xml'"),
    ({"GC_THRESHOLDS": "10000,50"}, "",
     "GC_THRESHOLDS must be 'python' or three positive integers like 10000,50,100, got '10000,50'"),
])
def test_a_bad_value_stops_gunicorn_with_one_line_naming_the_variable(tmp_path, env, dotenv, message):
    done = run_gunicorn(tmp_path, env, dotenv)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and f"ki2api: {message}" in output, output
    assert "Traceback" not in output and "Booting worker" not in output, output
