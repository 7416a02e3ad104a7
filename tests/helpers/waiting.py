"""Waiting for a condition in tests: poll until it holds, fail naming it after a deadline (never sleep-and-hope)."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(condition: Callable[[], Any], what: str = "", timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll `condition()` every `interval` s until it is truthy and return its value; fail naming `what`
    (or the condition) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)
