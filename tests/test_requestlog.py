"""The one summary line per request (fields, ids, streams, secrets), its formats, and ProxyFix."""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace

import pytest
from flask import Response, stream_with_context

from ki2api.app import create_app
from ki2api.observability.logformat import StructuredFormatter, logfmt_value, render
from ki2api.observability.requestlog import note, upstream_error_kind
from tests.helpers.credentials import ACCESS, KEY, REFRESH
from tests.helpers.accounts import fake_accounts, write_token_dir

CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "PROMPT-MARKER-7731 tell me"}]}


@pytest.fixture
def lines(caplog):
    """The summary records' fields, oldest first."""
    caplog.set_level(logging.INFO)
    return lambda: [r.fields for r in caplog.records if r.name == "ki2api.request"]


def call(client, method, path, **kwargs):
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def test_one_line_per_request_with_the_fields(client, auth, fake_upstream, lines):
    fake_upstream.script({"texts": ["Hello", " world"], "context_usage": 2.0})
    response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    [line] = lines()
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert line["route"] == "/v1/chat/completions" and line["method"] == "POST"
    assert line["model"] == "claude-sonnet-4-5" and line["stream"] is False
    assert line["status"] == 200 and line["upstream_status"] == 200
    assert line["tokens_in"] == 4000 and line["tokens_out"] > 0  # the usage the client was told
    assert line["account"] == app_account(client)  # the pool account's name, noted by the client itself
    assert 0 < line["ttfb_ms"] <= line["duration_ms"]
    assert line["client_ip"] == "127.0.0.1"


def app_account(client) -> str:
    """The name of the (only) pool account of the app behind `client`."""
    [account] = client.application.extensions["ki2api"].pool.accounts
    return account.name


def test_stream_line_is_written_when_the_stream_ends(client, auth, fake_upstream, lines):
    fake_upstream.script({"texts": ["a", "b", "c"]})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth, buffered=False)
    chunks = iter(response.response)
    next(chunks)
    assert lines() == []  # still streaming
    rest = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
    assert b"[DONE]" in rest
    response.close()
    [line] = lines()
    assert line["stream"] is True and line["status"] == 200 and line["outcome"] == "complete"
    assert line["account"] == app_account(client)
    assert 0 < line["ttfb_ms"] <= line["duration_ms"]


def usage_chunk(body: bytes) -> dict:
    """The `usage` of the last chunk of an OpenAI stream read whole (stream_options.include_usage)."""
    datas = [line[6:] for line in body.decode().splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    return json.loads(datas[-2])["usage"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_stream_line_has_the_tokens_the_client_was_told(client, auth, fake_upstream, lines, path):
    fake_upstream.script({"texts": ["one ", "two ", "three"], "context_usage": 3.0})
    if path == "/v1/messages":
        body = {**CHAT, "max_tokens": 100, "stream": True}
    else:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = call(client, "POST", path, json=body, headers=auth)
    text = response.get_data()
    if path == "/v1/messages":
        events = [json.loads(line[6:]) for line in text.decode().splitlines() if line.startswith("data: ")]
        final = events[-2]["usage"]  # message_delta's, the last word on the usage
        told = (final["input_tokens"], final["output_tokens"])
    else:
        usage = usage_chunk(text)
        told = (usage["prompt_tokens"], usage["completion_tokens"])
    [line] = lines()
    assert (line["tokens_in"], line["tokens_out"]) == told and told[0] > 0 and told[1] > 0


def test_client_gone_mid_stream_is_logged_as_such(client, auth, fake_upstream, lines):
    fake_upstream.script({"texts": ["a", "b", "c"], "hold_after": 2})
    response = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth, buffered=False)
    next(iter(response.response))
    response.close()
    fake_upstream.release()
    [line] = lines()
    assert line["outcome"] == "client_closed"


def test_the_line_names_the_account_that_answered_after_a_failover(settings, tmp_path, fake_upstream, auth, lines):
    # Account a's stream opens with a throttle frame: the call moves to b inside the stream, after send() returned.
    throttle = {"events": [{"exception": "ThrottlingException", "message": "slow down"}]}
    fake_upstream.reset(accounts=fake_accounts("a", "b", a={"default": throttle}))
    app = create_app(replace(settings, token_dir=str(write_token_dir(tmp_path / "pool", "a", "b"))))
    client = app.test_client()
    for _ in range(60):  # until a was tried first (the pool breaks ties at random)
        call(client, "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
        if fake_upstream.stats()["accounts"]["a"]["chat_requests"]:
            break
    assert fake_upstream.stats()["accounts"]["a"]["chat_requests"] == 1
    assert {(line["status"], line["account"]) for line in lines()} == {(200, "b")}


def test_values_noted_at_the_end_of_a_stream_reach_the_line(settings, lines):
    app = create_app(settings)

    @app.get("/test-stream")
    def _stream() -> Response:
        note(model="claude-opus-4-5", stream=True)

        def body():
            yield "data: 1\n\n"
            note(tokens_in=12, tokens_out=34, account="work")

        return Response(stream_with_context(body()), mimetype="text/event-stream")

    call(app.test_client(), "GET", "/test-stream")
    [line] = lines()
    assert (line["tokens_in"], line["tokens_out"], line["account"]) == (12, 34, "work")
    assert app.extensions["ki2api.requests"].metrics.totals()["tokens"] == {"in": 12, "out": 34}


def test_request_id_is_echoed_when_sane_and_replaced_when_not(client, auth, lines):
    assert call(client, "GET", "/v1/models", headers={**auth, "X-Request-Id": "abc-123.X_y"}) \
        .headers["X-Request-Id"] == "abc-123.X_y"
    replaced = call(client, "GET", "/v1/models", headers={**auth, "X-Request-Id": "bad id\" x=1"})
    assert replaced.headers["X-Request-Id"] != "bad id\" x=1" and len(replaced.headers["X-Request-Id"]) == 32
    assert [line["request_id"] for line in lines()][1] == replaced.headers["X-Request-Id"]


def test_upstream_failure_is_in_the_line(client, auth, fake_upstream, lines):
    fake_upstream.script({"status": 429, "json": {"message": "Too many requests"}})
    response = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 429
    [line] = lines()
    assert line["status"] == 429 and line["upstream_error"] == "rate_limit_exceeded"


def test_no_prompt_key_or_token_at_info(client, auth, fake_upstream, caplog):
    caplog.set_level(logging.INFO)
    fake_upstream.script({"texts": ["ANSWER-MARKER-5521"]}, {"texts": ["ANSWER-MARKER-5521"]})
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    call(client, "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    call(client, "POST", "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-wrong-key-99"})
    formatter = StructuredFormatter("json")
    text = "\n".join(formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO)
    assert text.count('"msg":"request"') == 3
    for secret in ("PROMPT-MARKER-7731", "ANSWER-MARKER-5521", KEY, "sk-wrong-key-99", ACCESS, REFRESH):
        assert secret not in text


def test_upstream_error_kind_reads_both_envelopes():
    assert upstream_error_kind(429, {"error": {"type": "rate_limit_error", "code": "insufficient_quota"}}) \
        == "insufficient_quota"
    assert upstream_error_kind(502, {"type": "error", "error": {"type": "api_error", "message": "x"}}) == "api_error"
    assert upstream_error_kind(400, {"error": {"type": "invalid_request_error", "code": None}}) is None
    assert upstream_error_kind(400, {"error": {"type": "x", "code": "context_length_exceeded"}}) \
        == "context_length_exceeded"
    assert upstream_error_kind(503, "not json") is None


def test_logfmt_quotes_and_escapes():
    assert logfmt_value("plain-word_1.2") == "plain-word_1.2"
    assert logfmt_value('two words "quoted"\nnext') == '"two words \\"quoted\\"\\nnext"'
    assert logfmt_value("a=b") == '"a=b"'
    assert logfmt_value(True) == "true" and logfmt_value(None) == ""
    assert logfmt_value("\x1b[31m") == '"\\x1b[31m"'
    assert render({"a": 1, "b": "x y"}, "logfmt") == 'a=1 b="x y"'


def test_formatter_makes_one_line_even_with_a_traceback():
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = logging.LogRecord("ki2api.x", logging.ERROR, __file__, 1, "failed: %s", ("why",), sys.exc_info())
    record.fields = {"request_id": "r1"}
    for fmt in ("json", "logfmt"):
        out = StructuredFormatter(fmt).format(record)
        assert "\n" not in out
    parsed = json.loads(StructuredFormatter("json").format(record))
    assert parsed["level"] == "ERROR" and parsed["msg"] == "failed: why" and parsed["request_id"] == "r1"
    assert "ValueError: line one\nline two" in parsed["exc"]
    assert parsed["ts"].endswith("Z")


def test_client_ip_comes_from_x_forwarded_for_only_with_trusted_proxies(settings, auth, lines):
    headers = {**auth, "X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    call(create_app(settings).test_client(), "GET", "/v1/models", headers=headers, environ_base=environ)
    call(create_app(replace(settings, trusted_proxies=1)).test_client(), "GET", "/v1/models", headers=headers,
         environ_base=environ)
    call(create_app(replace(settings, trusted_proxies=2)).test_client(), "GET", "/v1/models", headers=headers,
         environ_base=environ)
    assert [line["client_ip"] for line in lines()] == ["127.0.0.1", "203.0.113.7", "198.51.100.9"]


def test_static_files_and_the_status_page_are_logged_too(client, lines):
    for path in ("/", "/static/dashboard.js"):
        assert call(client, "GET", path).status_code == 200
    assert [(line["route"], line["status"]) for line in lines()] == [("/", 200), ("/static/<path:filename>", 200)]


def test_recent_requests_keep_api_calls_not_the_pages_own_polls(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["Hi"]})
    chat = call(client, "POST", "/v1/chat/completions", json=CHAT, headers=auth)
    for _ in range(60):  # more than the list holds: a status page left open, health checks, scrapes
        for path in ("/health", "/dashboard/data", "/metrics", "/static/dashboard.js"):
            call(client, "GET", path, headers=auth)
    refused = call(client, "GET", "/metrics")  # no key: an error, and kept as one
    book = client.application.extensions["ki2api.requests"]
    assert [r["request_id"] for r in book.recent.latest()] == [chat.headers["X-Request-Id"]]
    [error] = book.errors.latest()
    assert error["request_id"] == refused.headers["X-Request-Id"] and error["status"] == 401


@pytest.mark.parametrize("env, name", [({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
                                       ({"TRUSTED_PROXIES": "-1"}, "TRUSTED_PROXIES"),
                                       ({"METRICS_PUBLIC": "maybe"}, "METRICS_PUBLIC")])
def test_bad_observability_settings_name_the_variable(env, name):
    from ki2api.settings import ConfigError, Settings

    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)
    defaults = Settings.from_env({})
    assert (defaults.log_format, defaults.trusted_proxies, defaults.metrics_public) == ("logfmt", 0, False)
