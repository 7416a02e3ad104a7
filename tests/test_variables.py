"""The parsers of environment variables: unset, blank, valid and malformed values."""
from __future__ import annotations

import os

import pytest

from ki2api import variables as v
from ki2api.variables import ConfigError


def test_integer():
    parse = v.integer(2)
    assert parse("N", None, 7) == 7 and parse("N", "  ", 7) == 7 and parse("N", " 3 ", 7) == 3
    with pytest.raises(ConfigError, match="N must be at least 2, got 1"):
        parse("N", "1", 7)
    with pytest.raises(ConfigError, match="N must be an integer, got 'x'"):
        parse("N", "x", 7)


def test_positive_and_seconds_or_off():
    assert v.positive("S", "2.5", 1.0) == 2.5 and v.positive("S", "", 1.0) == 1.0
    with pytest.raises(ConfigError, match="S must be positive"):
        v.positive("S", "0", 1.0)
    assert v.seconds_or_off("S", "0", 9.0) == 0.0 and v.seconds_or_off("S", None, 9.0) == 9.0


def test_text_optional_and_path():
    assert v.text("T", " a ", "d") == "a" and v.text("T", "", "d") == "d"
    assert v.optional("O", " ", None) is None and v.optional("O", "x", None) == "x"
    assert v.path("P", None, "~/x") == os.path.expanduser("~/x")


def test_urls():
    assert v.url("U", "http://h:1/", "https://d") == "http://h:1"
    with pytest.raises(ConfigError, match="U must be an http"):
        v.url("U", "h:1", "https://d")
    assert v.redis_url("R", "", None) is None
    with pytest.raises(ConfigError) as raised:
        v.redis_url("R", "http://user:secret@host", None)
    assert "secret" not in str(raised.value)


def test_choices_levels_and_flags():
    assert v.choice("a", "b")("C", " B ", "a") == "b"
    with pytest.raises(ConfigError, match="C must be one of a, b"):
        v.choice("a", "b")("C", "z", "a")
    assert v.level("L", "debug", "INFO") == "DEBUG"
    with pytest.raises(ConfigError, match="L must be"):
        v.level("L", "loud", "INFO")
    assert v.flag("F", "yes", False) is True and v.flag("F", None, False) is False
    with pytest.raises(ConfigError, match="F must be true or false"):
        v.flag("F", "2", False)
    assert v.exactly_one("D", "1", False) is True and v.exactly_one("D", "yes", False) is False


def test_keys_and_origins():
    assert v.keys("K", None, ("d",)) == ("d",) and v.keys("K", "a, b,", ("d",)) == ("a", "b")
    with pytest.raises(ConfigError, match="K must hold at least one key"):
        v.keys("K", " , ", ("d",))
    assert v.origins("O", "https://a.example/, *", ()) == ("https://a.example", "*")
    with pytest.raises(ConfigError, match="O must be"):
        v.origins("O", "https://a.example/path", ())


def test_gc_thresholds():
    assert v.gc_thresholds("G", "", (1, 2, 3)) == (1, 2, 3)
    assert v.gc_thresholds("G", "Python", (1, 2, 3)) is None
    assert v.gc_thresholds("G", "4,5,6", (1, 2, 3)) == (4, 5, 6)
    with pytest.raises(ConfigError, match="G must be 'python' or three positive integers"):
        v.gc_thresholds("G", "4,0,6", (1, 2, 3))
