"""tests/helpers/ci.py: one reading of the CI variable for every test that would otherwise skip."""
from __future__ import annotations

import pytest

from tests.helpers.ci import in_ci, missing


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "1", "yes", " true "])
def test_ci_is_on_for_the_usual_spellings(value):
    assert in_ci({"CI": value})


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}, {"CI": "no"}])
def test_ci_is_off_otherwise(environ):
    assert not in_ci(environ)


def test_missing_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="wrk is not installed; under CI every test must run"):
        missing("wrk is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="wrk is not installed"):
        missing("wrk is not installed")
