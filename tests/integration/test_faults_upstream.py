"""Upstream faults against gunicorn + gevent workers + the fake Kiro, on both client APIs.

Before the first byte reaches the client, a fault must become the right HTTP status in the client's own
error format. After it, the stream carries exactly one error event, ends cleanly with its finish/stop
reason, and the worker serves the next request as if nothing happened.
"""
from __future__ import annotations

import pytest

from tests.helpers.credentials import KEY, write_token_file
from tests.helpers.gateway import Gateway, free_port
from tests.helpers.faults import (APIS, DEFAULT_ANSWER, OPENAI, assert_worker_fine, call,
                                             wait_for)

pytestmark = pytest.mark.integration
api_param = pytest.mark.parametrize("api", APIS, ids=[a.name for a in APIS])
stream_param = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
ANTHROPIC_KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 429: "rate_limit_error", 502: "api_error", 503: "overloaded_error",
                   504: "timeout_error"}
OPENAI_KINDS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "invalid_request_error", 429: "rate_limit_error", 502: "upstream_error", 503: "upstream_unavailable",
                504: "upstream_timeout"}


def expected_kind(api, status: int) -> str:
    return (OPENAI_KINDS if api is OPENAI else ANTHROPIC_KINDS)[status]


def start(tmp_path_factory, fake, name: str, **env: str) -> Gateway:
    home = tmp_path_factory.mktemp(name)
    token = write_token_file(home / "sso" / "kiro-auth-token.json")
    base = {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token), "KIRO_API_BASE": fake.url,
            "KIRO_REFRESH_URL": fake.refresh_url, "KIRO_OIDC_URL": fake.oidc_url,
            "KI2API_STATE_DIR": str(home / "state"), "UPSTREAM_READ_TIMEOUT": "10",
            "KIRO_USAGE_INTERVAL": "0"}  # no usage poll: a used-up quota has no known reset date
    return Gateway({**base, **env}, home / "gunicorn.log").wait_ready()


class Shared:
    """One gateway for many tests; restarted after a test that put its Kiro account on a cooldown."""

    def __init__(self, tmp_path_factory, fake) -> None:
        self.factory, self.fake = tmp_path_factory, fake
        self.gateway: Gateway | None = None
        self.dirty = False

    def get(self) -> Gateway:
        if self.gateway is None or self.dirty:
            self.stop()
            self.gateway, self.dirty = start(self.factory, self.fake, "faults"), False
        return self.gateway

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None


@pytest.fixture(scope="module")
def shared(tmp_path_factory, fake_kiro_server):
    holder = Shared(tmp_path_factory, fake_kiro_server)
    yield holder
    holder.stop()


@pytest.fixture
def gw(shared, fake_upstream):
    """The shared gateway; these faults leave the credential and the account's health alone."""
    return shared.get()


@pytest.fixture
def cooling_gw(shared, fake_upstream):
    """The shared gateway for a test whose fault rests the Kiro account (429, 402, 403): restarted afterwards."""
    gateway = shared.get()
    yield gateway
    shared.dirty = True


def check_error(api, reply, status: int, code: str | None = None) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert api.error_kind(reply) == expected_kind(api, status)
    if code is not None and api is OPENAI:
        assert reply.body["error"]["code"] == code, reply.body


def check_cut_stream(api, reply, kind: str, partial: str) -> None:
    """A stream that started, then failed: its text so far, one error event, a clean end."""
    assert reply.status == 200
    assert reply.events is not None
    errors = api.stream_errors(reply)
    assert len(errors) == 1, reply.events
    assert (errors[0]["error"]["type"]) == kind, errors
    assert api.text(reply) == partial
    api.check_stream_shape(reply)


# --- the upstream cannot be reached or answers nothing usable -------------------------------------------------

@api_param
@stream_param
def test_connection_refused_is_503(tmp_path_factory, fake_upstream, api, stream):
    gateway = start(tmp_path_factory, fake_upstream, "refused", KIRO_API_BASE=f"http://127.0.0.1:{free_port()}")
    try:
        reply = call(gateway, api.path, api.body, stream=stream)
        check_error(api, reply, 503)
        assert "Retry-After" in reply.headers
        assert "Traceback" not in gateway.log_text()
    finally:
        gateway.stop()


@api_param
@stream_param
def test_reset_before_the_response_is_a_clean_error(gw, fake_upstream, api, stream):
    fake_upstream.script({"fault": "reset_before"})
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, 503)
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@stream_param
@pytest.mark.parametrize("body", [None, {"message": "OK"}], ids=["html", "json"])
def test_200_with_a_non_event_stream_body_is_502_before_the_first_byte(gw, fake_upstream, api, stream, body):
    fake_upstream.script({"fault": "non_eventstream", **({"json": body} if body else {})})
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, 502)
    assert reply.body["error"]["message"] == "Kiro answered 200 with a body that is not an event stream"
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@stream_param
@pytest.mark.parametrize("spec", [
    {"texts": [], "context_usage": None, "initial_response": False},  # a 200 with an empty body
    {"texts": [], "context_usage": None},  # initial-response only
    {"texts": []},  # initial-response, contextUsageEvent, meteringEvent: bookkeeping, no answer
    {"texts": [""]},  # an empty text event is no answer either
], ids=["empty-body", "initial-only", "usage-and-metering-only", "empty-text"])
def test_200_without_an_answer_is_502_before_the_first_byte(gw, fake_upstream, api, stream, spec):
    fake_upstream.script(spec)
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, 502)
    assert reply.body["error"]["message"] == "Kiro answered 200 without an answer"
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@stream_param
@pytest.mark.parametrize("fault", ["reset_after", "truncate", "bad_crc"])
def test_broken_stream_before_any_text_is_502_before_the_first_byte(gw, fake_upstream, api, stream, fault):
    # fault_after 1: only initial-response went out, then the stream breaks.
    fake_upstream.script({"fault": fault, "fault_after": 1})
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, 502)
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@pytest.mark.parametrize("fault", ["reset_after", "truncate", "bad_crc"])
def test_broken_stream_after_text_whole_answer_is_502(gw, fake_upstream, api, fault):
    fake_upstream.script({"texts": ["one ", "two ", "three"], "fault": fault, "fault_after": 3})
    reply = call(gw, api.path, api.body)
    check_error(api, reply, 502)
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@pytest.mark.parametrize("fault", ["reset_after", "truncate", "bad_crc"])
def test_broken_stream_after_text_ends_with_one_error_event(gw, fake_upstream, api, fault):
    # initial-response, "one ", "two " go out whole; the fault hits the third text frame.
    fake_upstream.script({"texts": ["one ", "two ", "three"], "fault": fault, "fault_after": 3})
    reply = call(gw, api.path, api.body, stream=True)
    check_cut_stream(api, reply, expected_kind(api, 502), "one two ")
    assert_worker_fine(gw, fake_upstream, api)


@api_param
def test_unknown_event_type_is_ignored(gw, fake_upstream, api):
    fake_upstream.script({"fault": "unknown_event"}, {"fault": "unknown_event"})
    assert api.text(call(gw, api.path, api.body)) == DEFAULT_ANSWER
    reply = call(gw, api.path, api.body, stream=True)
    assert api.text(reply) == DEFAULT_ANSWER
    assert not api.stream_errors(reply)
    api.check_stream_shape(reply)
    assert_worker_fine(gw, fake_upstream, api)


# --- errors the upstream reports inside a 200 stream ----------------------------------------------------------

@api_param
@stream_param
def test_exception_frame_before_any_text_is_an_http_error(gw, fake_upstream, api, stream):
    fake_upstream.script({"events": [{"exception": "InternalServerException", "message": "boom"}]})
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, 502)
    assert "boom" in str(reply.body)
    assert_worker_fine(gw, fake_upstream, api)


@api_param
@stream_param
def test_throttling_exception_frame_before_any_text_is_429(cooling_gw, fake_upstream, api, stream):
    fake_upstream.script({"events": [{"exception": "ThrottlingException", "message": "slow down"}]})
    reply = call(cooling_gw, api.path, api.body, stream=stream)
    check_error(api, reply, 429)
    assert "Retry-After" in reply.headers


@api_param
def test_exception_frame_mid_stream_ends_with_one_error_event(gw, fake_upstream, api):
    events = [{"event": "assistantResponseEvent", "payload": {"content": "partial "}},
              {"event": "assistantResponseEvent", "payload": {"content": "answer"}},
              {"exception": "InternalServerException", "message": "model crashed"},
              {"event": "assistantResponseEvent", "payload": {"content": " never sent"}}]
    fake_upstream.script({"events": events})
    reply = call(gw, api.path, api.body, stream=True)
    check_cut_stream(api, reply, expected_kind(api, 502), "partial answer")
    assert "model crashed" in api.stream_errors(reply)[0]["error"]["message"]
    assert_worker_fine(gw, fake_upstream, api)


@api_param
def test_invalid_state_event_mid_stream_ends_with_one_error_event(gw, fake_upstream, api):
    events = [{"event": "assistantResponseEvent", "payload": {"content": "so far"}},
              {"event": "invalidStateEvent", "payload": {"reason": "INVALID_STATE", "message": "lost track"}}]
    fake_upstream.script({"events": events})
    reply = call(gw, api.path, api.body, stream=True)
    check_cut_stream(api, reply, expected_kind(api, 502), "so far")
    assert_worker_fine(gw, fake_upstream, api)


@api_param
def test_content_length_exceeded_exception_is_a_length_stop_not_an_error(gw, fake_upstream, api):
    events = [{"event": "assistantResponseEvent", "payload": {"content": "long answer"}},
              {"exception": "ContentLengthExceededException", "message": "too long"}]
    fake_upstream.script({"events": events})
    reply = call(gw, api.path, api.body, stream=True)
    assert not api.stream_errors(reply)
    api.check_stream_shape(reply)
    finish = [d for _, d in reply.events if isinstance(d, dict) and (
        (d.get("choices") and d["choices"][0].get("finish_reason")) or d.get("type") == "message_delta")]
    reason = finish[0]["choices"][0]["finish_reason"] if api is OPENAI else finish[0]["delta"]["stop_reason"]
    assert reason == ("length" if api is OPENAI else "max_tokens")
    assert_worker_fine(gw, fake_upstream, api)


# --- stalls -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def impatient(tmp_path_factory, fake_kiro_server):
    """A gateway that tolerates one second of upstream silence."""
    gateway = start(tmp_path_factory, fake_kiro_server, "impatient", UPSTREAM_READ_TIMEOUT="1")
    yield gateway
    gateway.stop()


@api_param
@stream_param
def test_upstream_silent_before_its_first_frame_is_504(impatient, fake_upstream, api, stream):
    fake_upstream.script({"hold_after": 0})  # headers sent, then nothing until released
    reply = call(impatient, api.path, api.body, stream=stream)
    check_error(api, reply, 504)
    wait_for(lambda: fake_upstream.stats()["held_streams"] == 0, what="ki2api to hang up on the silent upstream")
    assert_worker_fine(impatient, fake_upstream, api)


@api_param
def test_stall_mid_stream_past_the_read_timeout_whole_answer_is_504(impatient, fake_upstream, api):
    fake_upstream.script({"texts": ["before ", "the stall"], "fault": "stall", "fault_after": 3})
    reply = call(impatient, api.path, api.body)
    check_error(api, reply, 504)
    assert reply.body["error"]["message"] == "Kiro stopped sending data (read timeout)"
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="ki2api to hang up on the stalled upstream")
    assert_worker_fine(impatient, fake_upstream, api)


@api_param
def test_stall_mid_stream_past_the_read_timeout_ends_with_one_error_event(impatient, fake_upstream, api):
    fake_upstream.script({"texts": ["before ", "the stall"], "fault": "stall", "fault_after": 3})
    reply = call(impatient, api.path, api.body, stream=True)
    check_cut_stream(api, reply, expected_kind(api, 504), "before the stall")
    assert_worker_fine(impatient, fake_upstream, api)


# --- every error status of the protocol doc, section 6 ----------------------------------------------------------

SECTION_6 = [
    # (upstream status, upstream body, client status, OpenAI code or None)
    (400, {"__type": "com.amazon.kiro.runtimeservice#ValidationException", "reason": "IMAGE_FORMAT_UNSUPPORTED",
           "message": "Bedrock error message: This model doesn't support the image content block"}, 400, None),
    (400, {"message": "Improperly formed request.", "reason": "REQUEST_BODY_INVALID"}, 400, None),
    (400, {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}, 400,
     "context_length_exceeded"),
    (400, {"message": "Input is too long."}, 400, "context_length_exceeded"),
    # the account may not use this model: marked for it, and with no other account that may, a 404 naming the rest
    (400, {"message": "Invalid model id", "reason": "INVALID_MODEL_ID"}, 404, "model_not_found"),
    (400, {"message": "Invalid signature in thinking block", "reason": "THINKING_SIGNATURE_INVALID"}, 400, None),
    (403, {"__type": "com.amazon.coral.service#AccessDeniedException",
           "message": "Your account has been suspended"}, 403, None),
    # "expired" without "token" is not the access token's fault: no refresh, no token rotation
    (403, {"__type": "com.amazon.coral.service#AccessDeniedException",
           "message": "Your Kiro subscription expired on 2026-05-01"}, 403, None),
    (401, {"message": "Subscription expired"}, 403, None),
    (402, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}, 429, "insufficient_quota"),
    (402, {"error": {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}}, 429,
     "insufficient_quota"),
    (429, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}, 429, "insufficient_quota"),
    (429, {"__type": "com.amazon.kiro.runtimeservice#ThrottlingException", "reason": "USER_REQUEST_RATE_EXCEEDED",
           "message": "Too many requests, please wait before trying again."}, 429, "rate_limit_exceeded"),
    (429, {"__type": "com.amazon.kiro.runtimeservice#ThrottlingException", "reason": "SERVICE_REQUEST_RATE_EXCEEDED",
           "message": "Too many requests, please wait before trying again."}, 429, "rate_limit_exceeded"),
    (429, {"message": "Insufficient model capacity", "reason": "INSUFFICIENT_MODEL_CAPACITY"}, 429,
     "rate_limit_exceeded"),
    (500, {"message": "Internal failure"}, 502, None),
    (502, {"message": "Bad gateway"}, 502, None),
    (503, {"message": "Service unavailable"}, 503, None),
]


@api_param
@stream_param
@pytest.mark.parametrize("upstream_status,upstream_body,status,code", SECTION_6,
                         ids=[f"{s}-{b.get('reason') or (b.get('error') or {}).get('reason') or b['message'][:12]}"
                              for s, b, _, _ in SECTION_6])
def test_every_documented_upstream_error_status(shared, fake_upstream, api, stream, upstream_status, upstream_body,
                                                status, code):
    gw = shared.get()
    # the account pool rests the account after these, or marks it for the model
    shared.dirty = upstream_status in (401, 402, 403, 429) or upstream_body.get("reason") == "INVALID_MODEL_ID"
    fake_upstream.script({"status": upstream_status, "json": upstream_body})
    reply = call(gw, api.path, api.body, stream=stream)
    check_error(api, reply, status, code)
    if status == 503 or code == "rate_limit_exceeded":  # docs/reliability.md promises Retry-After for these
        assert int(reply.headers["Retry-After"]) >= 1, reply.headers
    elif code == "insufficient_quota":  # no reset date known: the account rests KIRO_QUOTA_COOLDOWN (3600 s)
        assert reply.headers.get("Retry-After") == "3600", reply.headers
    else:
        assert "Retry-After" not in reply.headers, reply.headers
    detail = upstream_body.get("message") or upstream_body["error"]["message"]
    assert detail in str(reply.body), reply.body  # the person sees why
    assert fake_upstream.stats()["refresh_calls"] == 0


@api_param
@pytest.mark.parametrize("upstream_status,message", [
    (401, "The bearer token included in the request is invalid."),
    (403, "The bearer token included in the request is invalid."),
    (403, "The security token included in the request is expired"),
], ids=["401-invalid", "403-invalid", "403-expired"])
def test_bearer_token_rejected_twice_is_401_after_one_refresh(tmp_path_factory, fake_upstream, api,
                                                              upstream_status, message):
    denied = {"__type": "com.amazon.coral.service#AccessDeniedException", "message": message}
    gateway = start(tmp_path_factory, fake_upstream, "denied")
    try:
        fake_upstream.script({"status": upstream_status, "json": denied, "repeat": 2})
        reply = call(gateway, api.path, api.body)
        check_error(api, reply, 401)
        assert fake_upstream.stats()["refresh_calls"] == 1
        assert len(fake_upstream.requests()) == 2  # the original call, and one retry with the new token
        assert "Traceback" not in gateway.log_text()  # (the account now rests: the pool's cooldown)
    finally:
        gateway.stop()


@api_param
def test_bearer_token_rejected_once_is_refreshed_and_answered(tmp_path_factory, fake_upstream, api):
    gateway = start(tmp_path_factory, fake_upstream, "refreshed")
    try:
        fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAtest-refresh-token-0001")  # ours is revoked
        reply = call(gateway, api.path, api.body, stream=True)
        assert api.text(reply) == DEFAULT_ANSWER
        stats = fake_upstream.stats()
        assert stats["refresh_calls"] == 1
        assert [r["status"] for r in fake_upstream.requests()] == [403, 200]
    finally:
        gateway.stop()


def test_nothing_is_left_open_after_all_of_this(gw, fake_upstream):
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="no open upstream stream")
    assert "Traceback" not in gw.log_text()
