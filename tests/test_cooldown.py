"""The cooldown policy: Retry-After wins, quota rests until the reset date, otherwise backoff with jitter."""
from __future__ import annotations

import random

import pytest

from ki2api.accounts.cooldown import CooldownPolicy, describe, iso

NOW = 1_750_000_000.0
POLICY = CooldownPolicy(base=5.0, cap=300.0, quota_default=3600.0)


def wait(*args) -> float:
    """Seconds from NOW until the account may serve again."""
    return POLICY.until(*args) - NOW


@pytest.mark.parametrize("kind", ["throttled", "capacity", "quota", "rejected", "forbidden"])
def test_retry_after_is_honoured_exactly(kind):
    assert wait(kind, 3, 42.0, None, NOW, random.Random(1)) == 42.0


def test_quota_rests_until_the_reset_date_when_known():
    reset = NOW + 5 * 86400
    assert POLICY.until("quota", 1, None, reset, NOW, random.Random(1)) == reset  # exactly the reset moment


def test_quota_without_a_future_reset_date_rests_the_long_default():
    assert wait("quota", 1, None, None, NOW, random.Random(1)) == 3600.0
    assert wait("quota", 1, None, NOW - 10, NOW, random.Random(1)) == 3600.0


def test_backoff_doubles_with_jitter_between_half_and_full_and_is_capped():
    rng = random.Random(7)
    for failures, full in [(1, 5), (2, 10), (3, 20), (4, 40), (7, 300), (30, 300)]:
        samples = [wait("throttled", failures, None, None, NOW, rng) for _ in range(200)]
        assert all(full / 2 <= s <= full for s in samples)
        assert max(samples) - min(samples) > full / 10  # really jittered, not a constant


def test_capacity_shortages_never_rest_longer_than_a_minute():
    samples = [wait("capacity", 20, None, None, NOW, random.Random(i)) for i in range(50)]
    assert all(30 <= s <= 60 for s in samples)


def test_descriptions_and_times():
    assert describe("quota") == "the monthly quota is used up"
    assert iso(0.144) == "1970-01-01T00:00:00.144Z"
