"""A token file that stops parsing while several gunicorn workers serve (issue 19, item 3): one behaviour on
every worker, /health saying so on every worker, and the file never written over."""
from __future__ import annotations

import pytest
import requests

from tests.helpers.credentials import REFRESH, write_token_file
from tests.helpers.faults import DEFAULT_ANSWER, OPENAI, call

pytestmark = pytest.mark.integration
CORRUPT = '{"accessToken": "aoaAAAAAide-halfway-thro'
NEW_ACCESS = "aoaAAAAAfake-access-1"


def test_a_corrupt_token_file_is_served_alike_by_every_worker_and_never_written_over(start_gateway, fake_upstream,
                                                                                     token_file):
    gw = start_gateway(workers=3)
    assert OPENAI.text(call(gw, OPENAI.path, OPENAI.body)) == DEFAULT_ANSWER
    token_file.write_text(CORRUPT)  # the IDE stopped halfway through writing
    statuses = {call(gw, OPENAI.path, OPENAI.body).status for _ in range(15)}
    assert statuses == {200}
    for _ in range(9):  # new connections: the answers come from every worker
        report = requests.get(f"{gw.url}/health", timeout=10).json()
        assert report["status"] == "degraded" and report["credential"]["token_file"] == "unreadable"
        assert any("cannot be parsed" in w and str(token_file) in w for w in report["warnings"])
    fake_upstream.reset(access_tokens=[NEW_ACCESS], refresh_token=REFRESH)  # Kiro revokes the access token
    statuses = {call(gw, OPENAI.path, OPENAI.body).status for _ in range(9)}
    assert statuses == {200}
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert token_file.read_text() == CORRUPT  # a login the IDE was writing is not lost
    assert "cannot be parsed" in gw.log_text() and "ki2api's own state" in gw.log_text()
    write_token_file(token_file, access="aoaAAAAAide-new-login", refresh="aorAAAAAide-new-login")
    fake_upstream.reset(access_tokens=["aoaAAAAAide-new-login"], refresh_token="aorAAAAAide-new-login")
    assert {call(gw, OPENAI.path, OPENAI.body).status for _ in range(9)} == {200}
    assert requests.get(f"{gw.url}/health", timeout=10).json()["credential"]["token_file"] == "ok"
