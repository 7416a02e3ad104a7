"""A failing or hanging refresh endpoint met by several gunicorn workers at once (issue 19, item 2): one call per
round however many workers, and clients held for one refresh timeout at most, not one per worker in turn."""
from __future__ import annotations

import time

import pytest

from tests.helpers.credentials import write_token_file
from tests.helpers.faults import OPENAI, call
from tests.helpers.together import all_at_once

pytestmark = pytest.mark.integration
CLIENTS = 16


def test_a_failing_refresh_endpoint_gets_one_call_from_four_workers(start_gateway, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_status=500)
    gw = start_gateway(workers=4)
    replies = all_at_once(CLIENTS, lambda i: call(gw, OPENAI.path, OPENAI.body))
    assert {r.status for r in replies} == {503}
    assert all(float({k.lower(): v for k, v in r.headers.items()}["retry-after"]) >= 1 for r in replies)
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_a_hanging_refresh_endpoint_holds_clients_for_one_timeout(start_gateway, fake_upstream, token_file):
    # A token the fake does not know, so the late answer cannot spend the next test's refresh token.
    write_token_file(token_file, refresh="aorAAAAAslow-refresh-token", expires_in=-60)
    fake_upstream.reset(refresh_delay=4.0)
    gw = start_gateway(workers=4, TOKEN_REFRESH_TIMEOUT="1")

    def timed(i: int) -> tuple[int, float]:
        started = time.monotonic()
        reply = call(gw, OPENAI.path, OPENAI.body)
        return reply.status, time.monotonic() - started

    results = all_at_once(CLIENTS, timed)
    assert {status for status, _ in results} == {503}
    assert max(seconds for _, seconds in results) < 2.5, sorted(seconds for _, seconds in results)
    assert fake_upstream.stats()["refresh_calls"] == 1
