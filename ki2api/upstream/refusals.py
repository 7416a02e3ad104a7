"""What Kiro's refusals mean: a non-200 answer as the client's error, and what it says about the account.

Only upstream/client.py calls these; this is where Kiro's statuses, reasons and wording are interpreted
(protocol notes, sections 2 and 6).
"""
from __future__ import annotations

from typing import Any

import requests

from ..accounts.model_refusals import MODEL_REFUSED
from ..errors import (ApiError, AuthenticationError, ContextLengthExceeded, InvalidRequest, PermissionDenied,
                      RateLimited, UpstreamError, UpstreamUnavailable)

TOKEN_FAULTS = ("invalid", "expired")  # said of a "token": a reason to refresh (protocol notes, section 2)
THROTTLE_KINDS = ("ThrottlingException", "ServiceQuotaExceededException")
CAPACITY = "INSUFFICIENT_MODEL_CAPACITY"
QUOTA = "MONTHLY_REQUEST_COUNT"
# "Invalid model. Please select a different model to continue." (protocol notes, section 6): this account may
# not use the model asked for (not on its plan, not in its region), though another account may.
INVALID_MODEL = "INVALID_MODEL_ID"
# Said in a 403 (reason or message) when Kiro has suspended or locked the account, e.g. reason
# TEMPORARILY_SUSPENDED, "Your User ID ... temporarily is suspended. We've locked your account ..."
SUSPENSION_WORDS = ("suspended", "locked your account", "account is locked", "account has been locked")
RETRY_UNAVAILABLE = 5.0  # Retry-After (s) for a throttle or an outage when Kiro names no time
# Clients recognise a context overflow by its wording: LiteLLM (and so aider) by "maximum context length" from an
# OpenAI-style API and by "prompt is too long" from Anthropic's; this one sentence carries both.
CONTEXT_OVERFLOW = ("prompt is too long: This model's maximum context length is exceeded by this conversation "
                    "(Kiro: {detail}). Shorten the conversation or start a new one.")


def error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:300]}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = {**body["error"], **{k: v for k, v in body.items() if k != "error"}}
    return body if isinstance(body, dict) else {"message": str(body)[:300]}


def retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def says_suspended(response: requests.Response) -> bool:
    """True if Kiro says the account itself is suspended or locked (a 423, or a 403 saying so): no throttle,
    and no reason to refresh or retry (protocol notes, section 10)."""
    status = response.status_code
    if status == 423:
        return True
    if status != 403:
        return False
    body = error_body(response)
    words = f"{body.get('reason') or ''} {body.get('message') or body.get('Message') or ''}".lower()
    return any(word in words for word in SUSPENSION_WORDS)


def map_status(response: requests.Response) -> ApiError:
    """Translate a non-200 upstream answer into the client-facing error."""
    body = error_body(response)
    message = str(body.get("message") or body.get("Message") or "no message")
    reason = body.get("reason")
    detail = f"{message} (reason: {reason})" if reason else message
    status = response.status_code
    if says_suspended(response):
        return PermissionDenied(f"Kiro has suspended or locked this Kiro account (HTTP {status}): {detail}")
    if status == 400:
        if reason == "CONTENT_LENGTH_EXCEEDS_THRESHOLD" or "too long" in message.lower():
            return ContextLengthExceeded(CONTEXT_OVERFLOW.format(detail=detail), param="messages")
        return InvalidRequest(f"Kiro rejected the request: {detail}")
    if status in (401, 403):
        if says_token(message):
            return AuthenticationError(f"Kiro rejected the access token after a refresh: {message}")
        return PermissionDenied(f"Kiro refused the request: {detail}")
    if status == 402 or reason == QUOTA:
        return RateLimited(f"The Kiro account's monthly quota is used up: {detail}", code="insufficient_quota",
                           retry_after=retry_after(response))
    if status == 429:
        return RateLimited(f"Kiro is throttling requests: {detail}", code="rate_limit_exceeded",
                           retry_after=retry_after(response) or RETRY_UNAVAILABLE)
    if status in (503, 504):
        return UpstreamUnavailable(f"Kiro is unavailable (HTTP {status}): {detail}",
                                   retry_after=retry_after(response) or RETRY_UNAVAILABLE)
    return UpstreamError(f"Kiro answered HTTP {status}: {detail}")


def refusal_kind(response: requests.Response) -> str | None:
    """What a non-200 answer says about the account (accounts.cooldown.KINDS, or MODEL_REFUSED: the account may
    not use this model), or None if not the account's fault."""
    body = error_body(response)
    reason = str(body.get("reason") or "")
    status = response.status_code
    if says_suspended(response):
        return "suspended"
    if reason == INVALID_MODEL or (status == 400 and str(body.get("message", "")).startswith("Invalid model")):
        return MODEL_REFUSED
    if reason == CAPACITY:
        return "capacity"
    if status == 402 or reason == QUOTA:
        return "quota"
    if status == 429:
        return "throttled"
    if status in (401, 403):
        return "rejected" if says_token(str(error_body(response).get("message", ""))) else "forbidden"
    return None


def says_token(message: str) -> bool:
    """True if Kiro's message blames the access token ("The bearer token ... is invalid", "token has expired");
    "subscription expired" or "account suspended" are no reason to refresh."""
    lowered = message.lower()
    return "token" in lowered and any(word in lowered for word in TOKEN_FAULTS)
