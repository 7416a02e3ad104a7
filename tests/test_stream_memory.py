"""An open stream keeps no copy of its prompt: a long conversation costs memory while it is sent, not for as long
as Kiro takes to answer (docs/performance.md, memory per open stream)."""
from __future__ import annotations

import gc
import json
import tracemalloc

import pytest
from werkzeug.test import EnvironBuilder

from tests.helpers.credentials import KEY
from tests.helpers.waiting import wait_for

PROMPT = "lorem ipsum dolor sit amet " * 80_000  # 2.1 MB, as a long Claude Code conversation
BODIES = {
    "/v1/chat/completions": {"model": "claude-sonnet-4-5", "stream": True,
                             "messages": [{"role": "user", "content": PROMPT}]},
    "/v1/messages": {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                     "messages": [{"role": "user", "content": PROMPT}]},
}


@pytest.mark.parametrize("path", sorted(BODIES))
def test_an_open_stream_holds_no_copy_of_its_prompt(app, fake_upstream, path):
    small = {**BODIES[path], "stream": False, "messages": [{"role": "user", "content": "hi"}]}
    warm = app.test_client().post(path, json=small, headers={"Authorization": f"Bearer {KEY}"})
    assert warm.status_code == 200  # first requests import and cache what every later one uses
    fake_upstream.script({"texts": ["one ", "two"], "hold_after": 2})
    environ = EnvironBuilder(path=path, method="POST", data=json.dumps(BODIES[path]),
                             headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
                             ).get_environ()  # the client's copy of the body, made before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        body = iter(app(environ, lambda status, headers, exc_info=None: None))
        first = next(body)
        wait_for(lambda: fake_upstream.stats()["held_streams"] == 1, what="Kiro's answer to be held open")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert first  # the stream is open and has sent its first bytes
    # The body read, the parsed request, the Kiro payload and its JSON would each be a copy of the 2.1 MB.
    assert held < len(PROMPT) / 4, f"{held} bytes held while the stream is open"
    body.close()
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="the upstream connection to close")
