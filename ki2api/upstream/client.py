"""The HTTP client for Kiro's generateAssistantResponse; the one place upstream errors are mapped."""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any, Iterator

import requests

from ..errors import (ApiError, AuthenticationError, ContextLengthExceeded, InvalidRequest, PermissionDenied,
                      RateLimited, UpstreamError, UpstreamTimeout, UpstreamUnavailable)
from ..settings import Settings
from ..tokens import Credential, TokenManager
from .eventstream import EventStreamError
from .events import Event, UpstreamException, iter_events

log = logging.getLogger(__name__)

KIRO_VERSION = "0.11.63"
SDK = "aws-sdk-js/1.0.34"
_TOKEN_WORDS = ("bearer token", "token is invalid", "token has expired", "expired", "invalid token")
_THROTTLE_KINDS = ("ThrottlingException", "ServiceQuotaExceededException")


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:300]}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = {**body["error"], **{k: v for k, v in body.items() if k != "error"}}
    return body if isinstance(body, dict) else {"message": str(body)[:300]}


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def map_status(response: requests.Response) -> ApiError:
    """Translate a non-200 upstream answer into the client-facing error."""
    body = _error_body(response)
    message = str(body.get("message") or body.get("Message") or "no message")
    reason = body.get("reason")
    detail = f"{message} (reason: {reason})" if reason else message
    status = response.status_code
    if status == 400:
        if reason == "CONTENT_LENGTH_EXCEEDS_THRESHOLD" or "too long" in message.lower():
            return ContextLengthExceeded(f"The conversation is too long for the model: {detail}", param="messages")
        return InvalidRequest(f"Kiro rejected the request: {detail}")
    if status in (401, 403):
        if _says_token(message):
            return AuthenticationError(f"Kiro rejected the access token after a refresh: {message}")
        return PermissionDenied(f"Kiro refused the request: {detail}")
    if status == 402 or reason == "MONTHLY_REQUEST_COUNT":
        return RateLimited(f"The Kiro account's monthly quota is used up: {detail}", code="insufficient_quota",
                           retry_after=_retry_after(response))
    if status == 429:
        return RateLimited(f"Kiro is throttling requests: {detail}", code="rate_limit_exceeded",
                           retry_after=_retry_after(response) or 5.0)
    if status in (503, 504):
        return UpstreamUnavailable(f"Kiro is unavailable (HTTP {status}): {detail}", retry_after=_retry_after(response))
    return UpstreamError(f"Kiro answered HTTP {status}: {detail}")


def _says_token(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _TOKEN_WORDS)


class UpstreamStream:
    """An open upstream answer: its events, and a close() that releases the connection."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.request_id = response.headers.get("x-amzn-RequestId")

    def events(self) -> Iterator[Event]:
        """Yield events as frames arrive; stream failures become ApiErrors; always closes."""
        try:
            yield from iter_events(self.response.iter_content(chunk_size=None))
        except EventStreamError as exc:
            raise UpstreamError(f"Kiro sent a malformed event stream: {exc}") from None
        except UpstreamException as exc:
            if exc.kind in _THROTTLE_KINDS:
                raise RateLimited(f"Kiro is throttling requests: {exc.message}", retry_after=5.0) from None
            raise UpstreamError(f"Kiro reported an error mid-answer ({exc.kind}): {exc.message}") from None
        except requests.exceptions.Timeout:
            raise UpstreamTimeout("Kiro stopped sending data (read timeout)") from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamError(f"The connection to Kiro broke mid-answer: {type(exc).__name__}") from None
        finally:
            self.close()

    def close(self) -> None:
        """Close the upstream connection (idempotent)."""
        self.response.close()


class CodeWhispererClient:
    """Sends generateAssistantResponse calls with the current credential; refreshes once on a token error."""

    def __init__(self, settings: Settings, tokens: TokenManager, session: requests.Session) -> None:
        self.settings = settings
        self.tokens = tokens
        self.session = session
        self.url = f"{settings.api_base}/generateAssistantResponse"
        self.timeout = (settings.connect_timeout, settings.read_timeout)

    def _headers(self, credential: Credential) -> dict[str, str]:
        machine = hashlib.sha256(f"ki2api:{credential.profile_arn or credential.source}".encode()).hexdigest()
        agent = f"KiroIDE-{KIRO_VERSION}-{machine}"
        return {
            "Authorization": f"Bearer {credential.access_token}",
            "Content-Type": "application/json",
            "Accept": "application/vnd.amazon.eventstream, application/json",
            "x-amzn-codewhisperer-optout": "true",
            "x-amzn-kiro-agent-mode": "vibe",
            "x-amz-user-agent": f"{SDK} {agent}",
            "User-Agent": f"{SDK} ua/2.1 os/linux lang/js md/nodejs#22.22.0 api/codewhispererstreaming#1.0.34 m/E {agent}",
            "amz-sdk-invocation-id": str(uuid.uuid4()),
            "amz-sdk-request": "attempt=1; max=1",
        }

    def _post(self, payload: dict[str, Any], credential: Credential) -> requests.Response:
        arn = self.settings.profile_arn or credential.profile_arn
        body = {**payload, "profileArn": arn} if arn else payload
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            return self.session.post(self.url, data=data, headers=self._headers(credential), stream=True,
                                     timeout=self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise UpstreamTimeout("Could not connect to Kiro in time") from None
        except requests.exceptions.ReadTimeout:
            raise UpstreamTimeout("Kiro did not start answering in time") from None
        except requests.exceptions.ConnectionError:
            raise UpstreamUnavailable("Could not reach Kiro (connection failed)", retry_after=5.0) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamError(f"Request to Kiro failed: {type(exc).__name__}") from None

    def send(self, payload: dict[str, Any]) -> UpstreamStream:
        """Start a call; raise an ApiError before any byte reaches the client if it cannot succeed."""
        credential = self.tokens.current()
        response = self._post(payload, credential)
        if response.status_code in (401, 403) and _says_token(str(_error_body(response).get("message", ""))):
            response.close()
            log.info("upstream rejected the access token (HTTP %s); refreshing once", response.status_code)
            response = self._post(payload, self.tokens.refresh(credential))
        if response.status_code != 200:
            try:
                raise map_status(response)
            finally:
                response.close()
        return UpstreamStream(response)
