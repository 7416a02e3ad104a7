"""The settings declaration: every variable read through it, each declared once (settings_docs renders the docs)."""
from __future__ import annotations

from dataclasses import fields

import pytest

from ki2api.settings import ConfigError, Settings, declared, deprecated_in_use
from tests.helpers.gateway import REPO


def test_every_field_is_declared_with_a_variable_a_parser_and_a_meaning():
    for field in fields(Settings):
        spec = field.metadata["setting"]
        assert spec.env and spec.env.upper() == spec.env and spec.parse is not None and spec.doc and spec.group
        assert field.default == spec.default


def test_each_variable_is_declared_once():
    names = [spec.env for spec in declared()] + [name for spec in declared() for name in spec.deprecated]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("environ,expected", [
    ({"SSE_PING_INTERVAL": "3"}, 3.0),  # the former name of STREAM_KEEPALIVE, read while it is unset
    ({"SSE_PING_INTERVAL": "3", "STREAM_KEEPALIVE": "7"}, 7.0),
    ({"SSE_PING_INTERVAL": "3", "STREAM_KEEPALIVE": " "}, 3.0),
    ({"SSE_PING_INTERVAL": ""}, 15.0),
])
def test_a_deprecated_name_is_read_while_the_new_one_is_unset(environ, expected):
    assert Settings.from_env(environ).stream_keepalive == expected


def test_a_bad_value_under_a_deprecated_name_names_that_name():
    with pytest.raises(ConfigError, match="SSE_PING_INTERVAL"):
        Settings.from_env({"SSE_PING_INTERVAL": "-1"})


def test_deprecated_names_in_use_are_warned_about_with_the_name_to_use():
    assert deprecated_in_use({}) == deprecated_in_use({"STREAM_KEEPALIVE": "5"}) == []
    assert deprecated_in_use({"SSE_PING_INTERVAL": "5"}) == [
        "SSE_PING_INTERVAL is deprecated: set STREAM_KEEPALIVE instead"]
    assert deprecated_in_use({"SSE_PING_INTERVAL": "5", "STREAM_KEEPALIVE": "7"}) == [
        "SSE_PING_INTERVAL is deprecated: set STREAM_KEEPALIVE instead (SSE_PING_INTERVAL is ignored: "
        "STREAM_KEEPALIVE is set)"]


def test_the_defaults_read_from_an_empty_environment_are_the_declared_ones():
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("env,value,attribute,expected", [
    ("WORKER_CONNECTIONS", "64", "worker_connections", 64),
    ("GUNICORN_TIMEOUT", "5", "gunicorn_timeout", 5),
    ("GRACEFUL_TIMEOUT", "7", "graceful_timeout", 7),
    ("KEEPALIVE", "0", "keepalive", 0),
    ("GC_THRESHOLDS", "python", "gc_thresholds", None),
    ("GC_THRESHOLDS", " 700, 10 ,10", "gc_thresholds", (700, 10, 10)),
    ("KI2API_DEBUG_ENDPOINTS", "1", "debug_endpoints", True),
    ("KI2API_DEBUG_ENDPOINTS", "true", "debug_endpoints", False),
    ("KIRO_USAGE_INTERVAL", "0", "usage_interval", 0.0),
    ("CORS_ORIGINS", "https://a.example, *", "cors_origins", ("https://a.example", "*")),
])
def test_gunicorns_and_other_variables_are_read_through_the_declaration(env, value, attribute, expected):
    assert getattr(Settings.from_env({env: value}), attribute) == expected


@pytest.mark.parametrize("env,value", [("WORKER_CONNECTIONS", "0"), ("GC_THRESHOLDS", "1,2"),
                                       ("REDIS_URL", "http://x"), ("METRICS_PUBLIC", "maybe")])
def test_a_bad_value_names_its_variable(env, value):
    with pytest.raises(ConfigError, match=env):
        Settings.from_env({env: value})


def test_every_variable_of_the_env_example_is_declared():
    names = {name.strip() for spec in declared() for name in spec.env.split(",")}
    example = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    given = {line.lstrip("#").split("=", 1)[0] for line in example if "=" in line and " " not in line.split("=")[0]}
    assert given and given <= names, given - names
