"""Error responses: one key check for every keyed route, each API's envelope, and the headers set once."""
from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ki2api.app import create_app
from ki2api.errors import ApiError, AuthenticationError, ModelNotFound, PayloadTooLarge, RateLimited, UpstreamUnavailable
from ki2api.web.envelopes import HttpError, anthropic_body, anthropic_type, error_response, openai_body

KEYED = [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/messages"),
         ("POST", "/v1/messages/count_tokens"), ("GET", "/metrics"), ("GET", "/dashboard/data"),
         ("GET", "/debug/runtime")]


@pytest.fixture
def keyed_client(settings):
    return create_app(replace(settings, debug_endpoints=True)).test_client()


@pytest.mark.parametrize("method,path", KEYED)
def test_every_keyed_route_refuses_a_missing_key_the_same_way(keyed_client, method, path):
    response = keyed_client.open(path, method=method, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    else:
        assert body["error"]["code"] == "invalid_api_key" and body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("method,path", KEYED)
def test_every_keyed_route_takes_the_key_in_either_header(keyed_client, method, path, auth):
    key = auth["Authorization"].split(" ", 1)[1]
    for headers in (auth, {"x-api-key": key}):
        assert keyed_client.open(path, method=method, headers=headers, json={}).status_code != 401


def render(path: str, exc: ApiError):
    with Flask(__name__).test_request_context(path):
        response = error_response(exc)
        return response.status_code, dict(response.headers), response.get_json()


def test_openai_envelope_and_retry_after():
    status, headers, body = render("/v1/chat/completions", RateLimited("slow down", code="x", retry_after=2.4))
    assert status == 429 and headers["Retry-After"] == "2"
    assert body == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "x"}}
    assert render("/v1/models", UpstreamUnavailable("busy", retry_after=0.1))[1]["Retry-After"] == "1"


def test_anthropic_envelope_for_messages_paths_only():
    status, _, body = render("/v1/messages", ModelNotFound("no such model"))
    assert status == 404 and body == {"type": "error", "error": {"type": "not_found_error",
                                                                 "message": "no such model"}}
    assert "type" not in render("/v1/messagesX", ModelNotFound("no"))[2]  # not under /v1/messages: OpenAI's


def test_werkzeug_errors_keep_their_status_and_a_405_its_allow_header():
    status, headers, body = render("/v1/messages", HttpError(MethodNotAllowed(["POST"])))
    assert status == 405 and headers["Allow"] == "POST" and body["error"]["type"] == "invalid_request_error"
    status, headers, body = render("/v1/chat/completions", HttpError(MethodNotAllowed(["POST", "OPTIONS"])))
    assert headers["Allow"] == "POST, OPTIONS" and body["error"]["type"] == "invalid_request_error"
    assert render("/v1/messages/x", HttpError(NotFound()))[2]["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("exc,kind", [(PayloadTooLarge("big"), "request_too_large"),
                                      (AuthenticationError("who"), "authentication_error"),
                                      (UpstreamUnavailable("busy"), "overloaded_error"),
                                      (ApiError("bug"), "api_error")])
def test_anthropic_types(exc, kind):
    assert anthropic_type(exc) == kind


def test_bodies_for_in_band_stream_errors():
    with Flask(__name__).test_request_context("/v1/messages"):
        assert anthropic_body(ApiError("x")) == {"type": "error", "error": {"type": "api_error", "message": "x"}}
    assert openai_body(ApiError("x", param="p"))["error"] == {"message": "x", "type": "api_error", "param": "p",
                                                             "code": None}
