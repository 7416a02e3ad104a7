"""How the upstream client reads Kiro's refusals: which ones are the access token's fault, and what Retry-After."""
from __future__ import annotations

import json

import pytest
import requests

from ki2api.errors import AuthenticationError, PermissionDenied, RateLimited, UpstreamUnavailable
from ki2api.upstream.client import _utf8
from ki2api.upstream.refusals import map_status, refusal_kind


def response(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply._content = json.dumps(body).encode()
    reply.headers.update(headers or {})
    return reply


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("message", ["The bearer token included in the request is invalid.",
                                     "The security token included in the request is expired", "Invalid token",
                                     "Token has expired"])
def test_token_wording_is_a_token_problem(status, message):
    reply = response(status, {"message": message})
    assert refusal_kind(reply) == "rejected"
    assert isinstance(map_status(reply), AuthenticationError)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("message", ["Your Kiro subscription expired", "Subscription expired", "Trial has expired",
                                     "Your account has been suspended", "Invalid request"])
def test_expired_or_invalid_without_token_is_not_a_token_problem(status, message):
    reply = response(status, {"message": message})
    # a 403 saying "suspended" is a suspension (quarantine), below; as a 401 it is only a refusal
    assert refusal_kind(reply) == ("suspended" if status == 403 and "suspended" in message else "forbidden")
    error = map_status(reply)
    assert isinstance(error, PermissionDenied) and message in error.message


@pytest.mark.parametrize("body", [
    {"message": "Invalid model. Please select a different model to continue.", "reason": "INVALID_MODEL_ID"},
    {"message": "Invalid model. Please select a different model to continue."},
])
def test_an_invalid_model_is_a_refusal_of_that_model_only(body):
    assert refusal_kind(response(400, body)) == "model_unavailable"


def test_other_validation_errors_are_no_refusal():
    image = {"message": "This model doesn't support the image content block", "reason": "IMAGE_FORMAT_UNSUPPORTED"}
    assert refusal_kind(response(400, image)) is None
    assert refusal_kind(response(400, {"message": "Improperly formed request."})) is None


@pytest.mark.parametrize("status,body", [
    (403, {"__type": "com.amazon.kiro.runtimeservice#AccessDeniedException", "reason": "TEMPORARILY_SUSPENDED",
           "message": "Your User ID temporarily is suspended."}),
    (403, {"message": "We've locked your account as a security precaution."}),
    (403, {"error": {"reason": "TEMPORARILY_SUSPENDED", "message": "no detail"}}),
    (423, {"message": "Locked"}),
])
def test_a_suspended_or_locked_account_is_a_suspension_not_a_throttle(status, body):
    reply = response(status, body)
    assert refusal_kind(reply) == "suspended"
    error = map_status(reply)
    assert isinstance(error, PermissionDenied) and "suspended or locked" in error.message


@pytest.mark.parametrize("status,body", [
    (429, {"message": "Too many requests", "reason": "USER_REQUEST_RATE_EXCEEDED"}),
    (403, {"message": "User is not authorized to make this call."})])
def test_throttles_and_refusals_are_no_suspension(status, body):
    assert refusal_kind(response(status, body)) in ("throttled", "forbidden")


@pytest.mark.parametrize("status,kind", [(429, RateLimited), (503, UpstreamUnavailable), (504, UpstreamUnavailable)])
def test_throttles_and_outages_always_say_when_to_retry(status, kind):
    error = map_status(response(status, {"message": "later"}))
    assert isinstance(error, kind) and error.retry_after == 5.0
    assert map_status(response(status, {"message": "later"}, {"Retry-After": "30"})).retry_after == 30.0


def test_a_used_up_quota_names_no_retry_time_of_its_own():
    # The pool turns it into the account's rest: its quota reset date, else KIRO_QUOTA_COOLDOWN.
    error = map_status(response(402, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"}))
    assert isinstance(error, RateLimited) and error.code == "insufficient_quota" and error.retry_after is None


def test_the_body_goes_out_as_utf8_with_lone_surrogates_replaced():
    assert _utf8('{"a": "\u00e9\U0001F600"}') == '{"a": "\u00e9\U0001F600"}'.encode()
    assert _utf8('{"a": "x\ud800y\udfff"}') == '{"a": "x\ufffdy\ufffd"}'.encode()
