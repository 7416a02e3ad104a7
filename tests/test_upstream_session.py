"""UpstreamSession: requests' environment handling (proxies, NO_PROXY, CA bundle), looked up once per origin."""
from __future__ import annotations

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
