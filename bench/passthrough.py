"""The framework's floor: a Flask app under gunicorn's gevent worker that forwards Kiro's answer untouched.

`gunicorn -k gevent -w 1 bench.passthrough:app` with `PASSTHROUGH_UPSTREAM=http://127.0.0.1:PORT` set: each
POST is sent on with requests (stream=True) and the answer's reads are yielded back as they come, exactly the
I/O stack ki2api's streaming path uses (gunicorn, Flask's stream_with_context, requests/urllib3 chunked
decoding, gevent sockets) with none of ki2api's own work (no auth, decoding, translation or SSE). Its CPU per
frame, next to bench/relay.py's (bare gevent) and ki2api's, says which layer a frame's cost comes from.
"""
from __future__ import annotations

import os
from typing import Iterator

import requests
from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)
_session: list[requests.Session] = []  # made at the first request, after gunicorn's worker patched gevent


@app.post("/ceiling")
def ceiling() -> Response:
    """The framework's ceiling: the same app under the same worker answering at once, with no upstream call."""
    request.get_data()  # the body is read, as by any handler of a POST
    return Response(b'{"ok":true}', content_type="application/json")


@app.post("/generateAssistantResponse")
def forward() -> Response:
    """Send the request on and stream the answer back read by read."""
    if not _session:
        _session.append(requests.Session())
    upstream = _session[0].post(os.environ["PASSTHROUGH_UPSTREAM"] + request.path, data=request.get_data(),
                                headers={"Authorization": request.headers.get("Authorization", ""),
                                         "Content-Type": "application/json"}, stream=True, timeout=(10, 60))

    def body() -> Iterator[bytes]:
        try:
            yield from upstream.iter_content(chunk_size=None)
        finally:
            upstream.close()

    return Response(stream_with_context(body()), status=upstream.status_code,
                    content_type=upstream.headers.get("Content-Type"))
