"""The real nginx with config/nginx.conf in front of gunicorn (gevent) and the fake Kiro, driven by the openai SDK."""
from __future__ import annotations

import http.client
import json
import re
import time

import openai
import pytest
import requests

from ki2api.settings import Settings
from tests.helpers.credentials import KEY
from tests.helpers.nginx import SITE, Nginx, nginx_binary, render_site

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-5"


@pytest.fixture
def proxied(start_gateway):
    """(gateway, nginx): ki2api told it has one trusted proxy, nginx in front of it."""
    nginx_binary()
    gw = start_gateway(TRUSTED_PROXIES="1")
    server = Nginx(gw.port)
    try:
        yield gw, server.start()
    finally:
        server.stop()


def sdk(server: Nginx) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=30)


def log_line(gw, needle: str) -> str:
    """The gateway's log line containing `needle`: written when the response closes, just after the client read it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [line for line in gw.log_text().splitlines() if needle in line]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no log line with {needle!r}")


def directive(name: str) -> list[str]:
    """Values of every `name ...;` in the shipped site."""
    return re.findall(rf"^\s*{name}\s+([^;]+);", SITE.read_text(), re.M)


def test_shipped_site_is_fit_for_streaming_and_matches_ki2api_limits():
    assert directive("proxy_buffering") == ["off"]
    assert directive("proxy_http_version") == ["1.1"]
    assert directive("proxy_set_header") and 'Connection ""' in directive("proxy_set_header")
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in directive("proxy_set_header")
    assert "X-Real-IP $remote_addr" in directive("proxy_set_header")
    assert directive("keepalive") == ["32"]
    [read_timeout] = directive("proxy_read_timeout")
    assert int(read_timeout.rstrip("s")) > Settings().read_timeout  # longer than ki2api's own silence limit
    [size] = directive("client_max_body_size")
    assert int(size.rstrip("m")) * 1024 * 1024 == Settings().max_body_bytes


def test_rendered_config_passes_nginx_t():
    server = Nginx(upstream_port=8989)
    try:
        result = server.test_config()
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr
    finally:
        server.stop()


def test_render_refuses_a_config_it_cannot_repoint():
    with pytest.raises(AssertionError):
        render_site(1, 2, text="upstream x { server 10.0.0.1:80; }\nserver { listen 8080; }")


def test_non_streamed_completion_through_nginx(proxied, fake_upstream):
    gw, server = proxied
    fake_upstream.script({"texts": ["Through", " nginx."]})
    result = sdk(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == "Through nginx."
    assert [m.id for m in sdk(server).models.list()][0]


def test_stream_arrives_incrementally_through_nginx(proxied, fake_upstream):
    gw, server = proxied
    pieces = [f"piece{i} " for i in range(10)]
    fake_upstream.script({"texts": pieces, "hold_after": 3})
    stream = sdk(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 1:
                # The fake sent initial-response + 2 text frames and now waits for us: the first piece came
                # through gunicorn and nginx while 8 pieces and the end of the answer were still unsent.
                stats = fake_upstream.stats()
                assert stats["held_streams"] == 1 and stats["open_streams"] == 1
                assert fake_upstream.release() == 1
    assert received == pieces


def test_client_address_reaches_ki2api_through_x_forwarded_for(proxied, fake_upstream):
    gw, server = proxied
    # Connect to nginx from another loopback address, with a forged X-Forwarded-For in front.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=("127.0.0.5", 0))
    conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}", "X-Forwarded-For": "203.0.113.66",
                                               "X-Request-Id": "xff-check-1"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200 and response.getheader("X-Request-Id") == "xff-check-1"
    line = log_line(gw, "request_id=xff-check-1")
    assert "client_ip=127.0.0.5" in line  # nginx's peer, not nginx itself, not the forged entry


def test_nginx_gives_each_request_an_id_ki2api_logs(proxied):
    gw, server = proxied
    response = requests.get(f"{server.url}/health", timeout=10)
    request_id = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert "route=/health" in log_line(gw, f"request_id={request_id}")


def test_body_over_the_limit_is_refused_in_the_api_error_shape(proxied):
    gw, server = proxied
    too_big = b"x" * (Settings().max_body_bytes + 1)
    for path, check in (("/v1/chat/completions", lambda b: b["error"]["code"] == "payload_too_large"),
                        ("/v1/messages", lambda b: b["type"] == "error" and b["error"]["type"])):
        response = requests.post(f"{server.url}{path}", data=too_big, timeout=30,
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.headers["Content-Type"].startswith("application/json")
        assert check(json.loads(response.text))
    requests.get(f"{server.url}/health", headers={"X-Request-Id": "after-413"}, timeout=10)
    log_line(gw, "request_id=after-413")  # ki2api has logged everything it was sent before this
    assert "status=413" not in gw.log_text()  # nginx refused them before ki2api read a byte
