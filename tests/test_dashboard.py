"""The status page's routes through Flask's test client: the page needs no key, its data does, and holds no secret."""
from __future__ import annotations

from dataclasses import replace

from ki2api.app import create_app
from tests.helpers.credentials import ACCESS, KEY, REFRESH


def test_page_is_served_without_a_key_with_a_strict_policy(client):
    for path in ("/", "/dashboard"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert b"/static/dashboard.js" in response.data
        response.close()
    assert client.get("/static/dashboard.js").mimetype in ("text/javascript", "application/javascript")


def test_data_needs_the_key(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/dashboard/data", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "invalid_api_key"


def test_data_reports_credentials_requests_models_and_client_settings(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["hi"]})
    chat = client.post("/v1/chat/completions", headers=auth,
                       json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]})
    chat.close()
    response = client.get("/dashboard/data", headers={**auth, "Host": "gw.example:8443"})
    data = response.get_json()
    assert data["status"] == "running"
    [account] = data["accounts"]
    credential = account.get("credential", account)
    assert credential["loaded"] and credential["expires_at"]
    assert data["totals"]["routes"]["/v1/chat/completions"] == {"requests": 1, "errors": 0}
    assert data["recent_requests"][0]["request_id"] == chat.headers["X-Request-Id"]
    assert "claude-sonnet-4-5" in data["models"] and len(set(data["models"])) == len(data["models"])
    assert account["name"] == data["recent_requests"][0]["account"]  # the account that answered it
    assert data["client"]["base_url"] == "http://gw.example:8443/v1"
    assert data["client"]["chat_completions_url"] == "http://gw.example:8443/v1/chat/completions"
    text = response.get_data(as_text=True)
    for secret in (KEY, ACCESS, REFRESH, "x-api-key", "Bearer"):
        assert secret not in text


def test_client_settings_follow_the_scheme_nginx_forwards_when_trusted(settings, auth):
    client = create_app(replace(settings, trusted_proxies=1)).test_client()
    data = client.get("/dashboard/data", headers={**auth, "X-Forwarded-Proto": "https", "Host": "ki.example",
                                                  "X-Forwarded-For": "198.51.100.4"}).get_json()
    assert data["client"]["base_url"] == "https://ki.example/v1"
