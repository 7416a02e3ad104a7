"""What gunicorn answers itself (a request line or headers too large) is JSON in an error envelope both APIs read."""
from __future__ import annotations

import json
import socket

import pytest
import requests

from tests.helpers.anthropic_schema import validate_error
from tests.helpers.openai_schema import validate

pytestmark = pytest.mark.integration


def raw(gateway, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as is; the status line, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_path_too_long_is_a_json_414(gateway, path):
    answer = requests.post(f"{gateway.url}{path}?q={'a' * 5000}", json={}, timeout=10)
    assert answer.status_code == 414
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    validate(body, "ErrorResponse")
    validate_error(body)
    assert body["error"]["code"] == "request_line_too_long" and "too large" in body["error"]["message"]


def test_headers_too_large_are_a_json_error(gateway):
    status, headers, body = raw(gateway, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
    assert status.split()[1] in ("400", "431")
    assert headers["Content-Type"] == "application/json"
    validate_error(json.loads(body))


def test_a_malformed_request_line_is_a_json_400(gateway):
    status, headers, body = raw(gateway, b"NOT A REQUEST\r\n\r\n")
    assert status.startswith("HTTP/1.1 400")
    assert headers["Content-Type"] == "application/json"
    validate(json.loads(body), "ErrorResponse")
