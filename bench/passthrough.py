"""The framework's floor: a Flask app under gunicorn's gevent worker that forwards Kiro's answer untouched.

`gunicorn -k gevent -w 1 bench.passthrough:app` with `PASSTHROUGH_UPSTREAM=http://127.0.0.1:PORT` set: each
POST is sent on with requests (stream=True) and the answer's reads are yielded back as they come, exactly the
I/O stack ki2api's streaming path uses (gunicorn, Flask's stream_with_context, requests/urllib3 chunked
decoding, gevent sockets) with none of ki2api's own work (no auth, decoding, translation or SSE). Its CPU per
frame, next to bench/relay.py's (bare gevent) and ki2api's, says which layer a frame's cost comes from.

Three more routes of the same app measure the request path's parts (non-streamed answers only):
`/ceiling` answers at once with no upstream call (the framework alone); `/socket/...` forwards over a bare
kept-alive socket with no HTTP client library (the floor of any client: one send, the reads of one answer);
`/geventhttpclient/...` forwards with geventhttpclient, a gevent HTTP client with a C parser (what another
client library than requests would give).
"""
from __future__ import annotations

import os
import socket
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)
_clients: dict[str, Any] = {}  # made at the first request, after gunicorn's worker patched gevent
_sockets: list[socket.socket] = []  # idle kept-alive connections of the /socket route
POOL = 4000  # ki2api's own pool size (ki2api/__init__.py): no request at c=50 opens a fresh connection


def _upstream() -> str:
    return os.environ["PASSTHROUGH_UPSTREAM"]


def _headers() -> dict[str, str]:
    return {"Authorization": request.headers.get("Authorization", ""), "Content-Type": "application/json"}


@app.post("/ceiling")
def ceiling() -> Response:
    """The framework's ceiling: the same app under the same worker answering at once, with no upstream call."""
    request.get_data()  # the body is read, as by any handler of a POST
    return Response(b'{"ok":true}', content_type="application/json")


@app.post("/generateAssistantResponse")
def forward() -> Response:
    """Send the request on and stream the answer back read by read."""
    if "requests" not in _clients:
        session = _clients["requests"] = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL, max_retries=0)
        session.mount("http://", adapter)
    upstream = _clients["requests"].post(_upstream() + request.path, data=request.get_data(), headers=_headers(),
                                         stream=True, timeout=(10, 60))

    def body() -> Iterator[bytes]:
        try:
            yield from upstream.iter_content(chunk_size=None)
        finally:
            upstream.close()

    return Response(stream_with_context(body()), status=upstream.status_code,
                    content_type=upstream.headers.get("Content-Type"))


@app.post("/socket/generateAssistantResponse")
def forward_socket() -> Response:
    """Forward over a bare socket: the request written as bytes, the answer read to its end, nothing parsed
    beyond finding that end. No HTTP client can do less per request."""
    split = urlsplit(_upstream())
    data = request.get_data()
    head = (f"POST /generateAssistantResponse HTTP/1.1\r\nHost: {split.netloc}\r\nContent-Length: {len(data)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in _headers().items()) + "\r\n").encode()
    sock = _sockets.pop() if _sockets else socket.create_connection((split.hostname, split.port))
    sock.sendall(head + data)
    status, content_type, body = _read_answer(sock)
    _sockets.append(sock)
    return Response(body, status=status, content_type=content_type)


def _read_answer(sock: socket.socket) -> tuple[int, str, bytes]:
    """Status, content type and body (a chunked body left encoded) of one answer with Content-Length or chunked."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(sock)
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if "content-length" in fields:
        while len(body) < int(fields["content-length"]):
            body += _recv(sock)
    else:  # chunked: the answer ends with the last chunk, which is empty
        while not body.endswith(b"0\r\n\r\n"):
            body += _recv(sock)
    return int(lines[0].split()[1]), fields.get("content-type", ""), body


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the upstream closed the connection mid-answer")
    return data


@app.post("/geventhttpclient/generateAssistantResponse")
def forward_geventhttpclient() -> Response:
    """Forward with geventhttpclient (pinned in requirements-bench.txt) and return the whole answer."""
    if "geventhttpclient" not in _clients:
        from geventhttpclient import HTTPClient

        _clients["geventhttpclient"] = HTTPClient.from_url(_upstream(), concurrency=POOL,
                                                           connection_timeout=10, network_timeout=60)
    upstream = _clients["geventhttpclient"].post("/generateAssistantResponse", body=request.get_data(),
                                                 headers=_headers())
    try:
        body = upstream.read()
    finally:
        upstream.release()
    return Response(body, status=upstream.status_code, content_type=upstream.get("Content-Type"))
