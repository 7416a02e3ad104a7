"""A client that leaves early, through WSGI directly: the upstream call is closed and its account slot given back.

Disconnects under gunicorn's gevent worker (noticed by watching the client's socket) are in
tests/integration/test_faults_client.py; outside it the watching is a no-op, checked here too.
"""
from __future__ import annotations

import pytest
from werkzeug.test import EnvironBuilder

from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
            "stream": True}


@pytest.mark.parametrize("path,body", [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)])
def test_a_stream_closed_before_its_first_read_closes_the_upstream(app, fake_upstream, path, body):
    """The WSGI server got the 200 and closes the body without reading it (its client left first)."""
    fake_upstream.script({"texts": ["one ", "two ", "three"], "hold_after": 2})
    environ = EnvironBuilder(path=path, method="POST", json=body,
                             headers={"Authorization": f"Bearer {KEY}"}).get_environ()
    statuses: list[str] = []
    body_iter = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    wait_for(lambda: fake_upstream.stats()["held_streams"] == 1, what="the upstream answer to be held open")
    body_iter.close()  # the body is still referenced: nothing relies on garbage collection to close it
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, timeout=5,
             what="the upstream connection to be closed with the response")
    # On /v1/messages the answer is read by a thread of its own: the socket shuts down first, then that
    # thread's read returns and it gives the account's slot back, a moment later.
    [account] = app.extensions["ki2api"].pool.accounts
    wait_for(lambda: account.in_flight == 0, timeout=5, what="the account's slot to be given back")


def test_watching_is_a_no_op_outside_gunicorn(client, fake_upstream):
    """Flask's test client has no gunicorn socket: chat calls go out as usual, nothing waits on the client."""
    fake_upstream.script({"texts": ["fine"]})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": False},
                           headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and response.get_json()["choices"][0]["message"]["content"] == "fine"
