"""Whether the tests run under CI (`CI=true`, as .ci/run sets it), where a missing tool fails a test, never skips it."""
from __future__ import annotations

import os
from typing import Mapping, NoReturn

import pytest

_TRUE = frozenset({"true", "1", "yes"})


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """True when CI is set to true, True, 1 or yes (any case)."""
    return environ.get("CI", "").strip().lower() in _TRUE


def missing(what: str) -> NoReturn:
    """Stop a test that cannot run here: fail it under CI, where everything must run, skip it elsewhere."""
    if in_ci():
        pytest.fail(f"{what}; under CI every test must run, none may skip", pytrace=False)
    pytest.skip(what)
