"""The exceptions ki2api raises, each carrying the HTTP status it maps to.

    ApiError (500, api_error)
    +-- InvalidRequest (400, invalid_request_error)
    |   +-- ContextLengthExceeded (400, code context_length_exceeded)
    |   +-- PayloadTooLarge (413)
    |   +-- UnsupportedMediaType (415)
    +-- ModelNotFound (404, invalid_request_error, code model_not_found)
    +-- NotFound (404, invalid_request_error: a stored object, e.g. a response, unknown or expired)
    +-- AuthenticationError (401, authentication_error)
    +-- PermissionDenied (403, permission_error)
    +-- RateLimited (429, rate_limit_error, optional retry_after seconds)
    +-- UpstreamError (502, upstream_error)
    +-- UpstreamUnavailable (503, upstream_unavailable)
    +-- UpstreamTimeout (504, upstream_timeout)
    +-- ClientGone (499, client_closed_request: the client left before Kiro answered; nobody sees it)

Blueprints render these in their API's own envelope; nothing else should
build an error body.
"""
from __future__ import annotations


class ApiError(Exception):
    """Base error: a message safe to show the client, plus status and type."""

    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    code = "unsupported_media_type"


class ModelNotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(ApiError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class AuthenticationError(ApiError):
    status = 401
    type = "authentication_error"


class PermissionDenied(ApiError):
    status = 403
    type = "permission_error"


class RateLimited(ApiError):
    status = 429
    type = "rate_limit_error"


class UpstreamError(ApiError):
    status = 502
    type = "upstream_error"


class UpstreamUnavailable(ApiError):
    status = 503
    type = "upstream_unavailable"


class UpstreamTimeout(ApiError):
    status = 504
    type = "upstream_timeout"


class ClientGone(ApiError):
    """The client disconnected before Kiro answered: the call was ended, nobody reads this answer.

    Status 499 (nginx's "client closed request") so the request's log line and metrics tell it apart; below
    500, so the pool counts no error against the account.
    """

    status = 499
    type = "client_closed_request"
