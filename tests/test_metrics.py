"""/metrics through Flask's test client (the app's own registry), and the Metrics class on its own."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ki2api.app import create_app
from ki2api.observability.metrics import Metrics, credential_families, model_label
from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}


def scrape(client, headers) -> dict[tuple[str, tuple], float]:
    """The samples of /metrics as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    response.close()
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def call(client, method, path, **kwargs):
    """One request whose response is read and closed, as a WSGI server would (the summary is taken on close)."""
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def test_metrics_need_the_key_by_default(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_api_key"


def test_metrics_public_when_configured(settings):
    client = create_app(replace(settings, metrics_public=True)).test_client()
    assert client.get("/metrics").status_code == 200


def test_requests_are_counted_by_route_model_status_and_stream(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["a", "b"]}, {"texts": ["c"]}, {"texts": ["d"]})
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    call(client, "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    call(client, "POST", "/v1/chat/completions", json={**CHAT, "model": "gpt-4"}, headers=auth)
    call(client, "GET", "/v1/models")
    samples = scrape(client, auth)
    route = "/v1/chat/completions"
    assert value(samples, "ki2api_requests_total", route=route, model="claude-sonnet-4-5", status="200",
                 stream="false") == 2
    assert value(samples, "ki2api_requests_total", route=route, model="claude-sonnet-4-5", status="200",
                 stream="true") == 1
    assert value(samples, "ki2api_requests_total", route=route, model="", status="404", stream="false") == 1
    assert value(samples, "ki2api_requests_total", route="/v1/models", model="", status="401", stream="false") == 1
    assert value(samples, "ki2api_request_duration_seconds_count", route=route, stream="false") == 3
    assert value(samples, "ki2api_request_ttfb_seconds_count", route=route, stream="true") == 1
    assert value(samples, "ki2api_streams_in_flight") == 0
    assert value(samples, "ki2api_tokens_total", direction="out") > 0


def test_streamed_tokens_are_counted_as_the_client_was_told(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["a few ", "words ", "streamed"], "context_usage": 2.5})
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    text = call(client, "POST", "/v1/chat/completions", json=body, headers=auth).get_data(as_text=True)
    usage = json.loads([line[6:] for line in text.splitlines() if line.startswith("data: ")][-2])["usage"]
    samples = scrape(client, auth)
    assert value(samples, "ki2api_tokens_total", direction="in") == usage["prompt_tokens"] > 0
    assert value(samples, "ki2api_tokens_total", direction="out") == usage["completion_tokens"] > 0


def test_in_flight_streams_gauge_counts_open_streams_until_closed(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["one", "two", "three"]})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth, buffered=False)
    body = iter(response.response)
    first = next(body)
    assert b"data:" in (first if isinstance(first, bytes) else first.encode())
    assert value(scrape(client, auth), "ki2api_streams_in_flight") == 1
    response.close()  # the client went away mid-stream
    assert value(scrape(client, auth), "ki2api_streams_in_flight") == 0


@pytest.mark.parametrize("spec, kind", [
    ({"status": 429, "json": {"message": "slow down", "reason": None}}, "rate_limit_exceeded"),
    ({"status": 500, "json": {"message": "boom"}}, "upstream_error"),
    ({"status": 503, "json": {"message": "down"}}, "upstream_unavailable"),
    ({"status": 400, "json": {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}},
     "context_length_exceeded"),
])
def test_upstream_errors_are_counted_by_kind(client, auth, fake_upstream, spec, kind):
    fake_upstream.script(spec)
    response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code >= 400
    assert value(scrape(client, auth), "ki2api_upstream_errors_total", kind=kind) == 1


def test_client_errors_are_not_upstream_errors(client, auth):
    call(client, "POST", "/v1/chat/completions", json={"model": "claude-sonnet-4-5"}, headers=auth)
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer wrong"})
    samples = scrape(client, auth)
    assert not [key for key in samples if key[0] == "ki2api_upstream_errors_total"]


def test_credential_gauges_and_refresh_counter(settings, token_file, fake_upstream, auth):
    write_token_file(token_file, expires_in=-60)  # expired: the first chat call refreshes
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH)
    client = create_app(settings).test_client()
    assert call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    samples = scrape(client, auth)
    assert value(samples, "ki2api_account_up", account="default") == 1
    assert value(samples, "ki2api_account_needs_login", account="default") == 0
    assert 3000 < value(samples, "ki2api_account_token_expires_in_seconds", account="default") <= 3600
    assert value(samples, "ki2api_account_last_refresh_ok", account="default") == 1
    assert value(samples, "ki2api_token_refreshes_total", account="default", result="ok") == 1
    assert value(samples, "ki2api_account_requests_total", account="default") == 1
    assert value(samples, "ki2api_account_cooldown_seconds", account="default") == 0


def test_no_secret_in_metrics(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["x"]})
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    text = client.get("/metrics", headers=auth).get_data(as_text=True)
    for secret in (KEY, ACCESS, REFRESH, "EHGA3GRVQMUK", "699475941385"):
        assert secret not in text


def test_model_label_keeps_known_names_only():
    assert model_label("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert model_label(" Claude-Sonnet-4-5 ") == "claude-sonnet-4-5"
    assert model_label("sk-ant-my-secret-key") == "other"
    assert model_label(None) == ""


def test_unknown_route_is_one_label_not_the_path(client, auth):
    call(client, "GET", "/wp-admin/setup.php?token=abc")
    samples = scrape(client, auth)
    routes = {dict(labels).get("route") for name, labels in samples if name == "ki2api_requests_total"}
    assert "unmatched" in routes and not any("wp-admin" in (r or "") for r in routes)


def test_totals_add_up_routes_errors_and_refreshes():
    metrics = Metrics()
    for status in (200, 200, 502):
        metrics.observe({"route": "/v1/messages", "model": "claude-opus-4-5", "status": status, "stream": True,
                         "ttfb_ms": 12.0, "duration_ms": 40.0, "tokens_in": 10, "tokens_out": 3,
                         **({"upstream_error": "upstream_error"} if status == 502 else {})})
    metrics.token_refreshed(True)
    metrics.token_refreshed(False, "work")
    totals = metrics.totals()
    assert totals["routes"] == {"/v1/messages": {"requests": 3, "errors": 1}}
    assert totals["upstream_errors"] == {"upstream_error": 1}
    assert totals["token_refreshes"] == {"ok": 1, "failed": 1}
    assert totals["tokens"] == {"in": 30, "out": 9}


def test_credential_families_skip_unknown_values():
    families = credential_families({
        "a": {"state": "healthy", "credential": {"loaded": True, "needs_login": False, "expires_in_seconds": 10,
                                                 "last_refresh": None}},
        "b": {"state": "needs_login", "credential": {"loaded": False, "needs_login": True,
                                                     "expires_in_seconds": None}}})
    by_name = {f.name: {s.labels["account"]: s.value for s in f.samples} for f in families}
    assert by_name["ki2api_account_up"] == {"a": 1.0, "b": 0.0}
    assert by_name["ki2api_account_token_expires_in_seconds"] == {"a": 10.0}
    assert by_name["ki2api_account_last_refresh_ok"] == {}


def test_credential_families_read_pool_rows():
    rows = {"work": {"name": "work", "state": "cooling_down", "credential": {
                "loaded": True, "needs_login": False, "expires_in_seconds": 900, "last_refresh": {"ok": False}}},
            "home": {"name": "home", "state": "healthy", "credential": {
                "loaded": True, "needs_login": False, "expires_in_seconds": 50, "last_refresh": {"ok": True}}}}
    families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in credential_families(rows)}
    assert families["ki2api_account_up"] == {("work",): 0.0, ("home",): 1.0}
    assert families["ki2api_account_state"] == {("work", "cooling_down"): 1.0, ("home", "healthy"): 1.0}
    assert families["ki2api_account_last_refresh_ok"] == {("work",): 0.0, ("home",): 1.0}


def test_every_pool_account_is_in_the_metrics_with_its_refreshes(settings, fake_upstream, tmp_path, auth):
    from tests.helpers.accounts import THROTTLED, fake_accounts, write_token_dir

    fake_upstream.reset(accounts=fake_accounts("work", "home"))
    write_token_dir(tmp_path / "pool", "work", "home", expired=("work", "home"))  # each must refresh first
    client = create_app(replace(settings, token_dir=str(tmp_path / "pool"))).test_client()
    fake_upstream.script({**THROTTLED, "account": "work"})
    statuses = []
    while fake_upstream.stats()["accounts"]["work"]["chat_requests"] == 0 and len(statuses) < 60:
        statuses.append(call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth).status_code)
    samples = scrape(client, auth)
    assert statuses and set(statuses) == {200}  # the throttled account failed over to the other
    for name in ("work", "home"):
        assert value(samples, "ki2api_token_refreshes_total", account=name, result="ok") == 1
        assert value(samples, "ki2api_account_token_expires_in_seconds", account=name) > 3000
    assert value(samples, "ki2api_account_state", account="work", state="cooling_down") == 1
    assert value(samples, "ki2api_account_cooldown_seconds", account="work") > 0
    assert value(samples, "ki2api_account_up", account="home") == 1
