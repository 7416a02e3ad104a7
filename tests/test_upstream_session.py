"""UpstreamSession: requests' environment handling (proxies, NO_PROXY, CA bundle), looked up once per origin, and
the chat call prepared in one step (post_stream), which must send what session.post sends."""
from __future__ import annotations

import io

import pytest
import requests
from requests.adapters import BaseAdapter

from ki2api.upstream.session import UpstreamSession


def merged(session: UpstreamSession, url: str, **kwargs) -> dict:
    args = {"proxies": {}, "stream": None, "verify": None, "cert": None, **kwargs}
    return session.merge_environment_settings(url, args["proxies"], args["stream"], args["verify"], args["cert"])


def test_proxy_and_ca_bundle_from_the_environment_are_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = merged(UpstreamSession(), "https://q.us-east-1.amazonaws.com/generateAssistantResponse", stream=True)
    assert settings["proxies"]["https"] == "http://proxy.local:3128"
    assert settings["verify"] == "/etc/ssl/corp.pem"
    assert settings["stream"] is True


def test_no_proxy_is_honoured_per_host(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = UpstreamSession()
    assert "http" not in merged(session, "http://127.0.0.1:8000/x")["proxies"]
    assert merged(session, "http://example.test/x")["proxies"]["http"] == "http://proxy.local:3128"


def test_environment_is_read_once_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://first.local:1")
    session = UpstreamSession()
    assert merged(session, "https://a.test/one")["proxies"]["https"] == "http://first.local:1"
    monkeypatch.setenv("HTTPS_PROXY", "http://second.local:2")
    assert merged(session, "https://a.test/two")["proxies"]["https"] == "http://first.local:1"
    assert merged(session, "https://b.test/")["proxies"]["https"] == "http://second.local:2"


def test_returned_proxies_are_a_fresh_dict_each_time(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    session = UpstreamSession()
    merged(session, "https://a.test/")["proxies"]["https"] = "changed"
    assert merged(session, "https://a.test/")["proxies"]["https"] == "http://proxy.local:3128"


def test_explicit_settings_bypass_the_cache(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://env.local:1")
    session = UpstreamSession()
    settings = merged(session, "https://a.test/", proxies={"https": "http://given.local:2"}, verify=False)
    assert settings["proxies"]["https"] == "http://given.local:2"
    assert settings["verify"] is False


class Recorder(BaseAdapter):
    """A transport that keeps what it was asked to send and answers 200 with no body."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[requests.PreparedRequest, dict]] = []

    def send(self, request, **kwargs):
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code, response.url, response.request = 200, request.url, request
        response.raw = io.BytesIO(b"")
        return response

    def close(self) -> None:
        pass


def recording_session() -> tuple[UpstreamSession, Recorder]:
    session, recorder = UpstreamSession(), Recorder()
    session.mount("http://", recorder)
    session.mount("https://", recorder)
    return session, recorder


CHAT = "https://q.us-east-1.amazonaws.com/generateAssistantResponse"
HEADERS = {"Authorization": "Bearer tok", "Content-Type": "application/json", "User-Agent": "KiroIDE"}


def test_post_stream_sends_what_post_sends(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    session, recorder = recording_session()
    session.post_stream(CHAT, b'{"a": 1}', HEADERS, (5, 60))
    session.post(CHAT, data=b'{"a": 1}', headers=HEADERS, stream=True, timeout=(5, 60))
    (fast, fast_kwargs), (usual, usual_kwargs) = recorder.sent
    assert (fast.method, fast.url, fast.body) == (usual.method, usual.url, usual.body)
    assert dict(fast.headers) == dict(usual.headers)
    assert fast.headers["Content-Length"] == "8" and fast.headers["Accept-Encoding"]  # session defaults kept
    assert fast_kwargs == usual_kwargs
    assert fast_kwargs["proxies"]["https"] == "http://proxy.local:3128" and fast_kwargs["stream"] is True


def test_post_stream_refuses_a_header_with_a_line_break():
    session, recorder = recording_session()
    with pytest.raises(requests.exceptions.InvalidHeader):
        session.post_stream(CHAT, b"{}", {**HEADERS, "Authorization": "Bearer tok\r\nX-Injected: 1"}, 5)
    assert recorder.sent == []


def test_post_stream_sends_the_sessions_cookies():
    session, recorder = recording_session()
    session.cookies.set("AWSALB", "sticky", domain="q.us-east-1.amazonaws.com")
    session.post_stream(CHAT, b"{}", HEADERS, 5)
    assert recorder.sent[0][0].headers["Cookie"] == "AWSALB=sticky"


def test_post_stream_keeps_the_bearer_token_despite_a_netrc_entry(monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine q.us-east-1.amazonaws.com login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session, recorder = recording_session()
    session.post_stream(CHAT, b"{}", HEADERS, 5)
    assert recorder.sent[0][0].headers["Authorization"] == "Bearer tok"
