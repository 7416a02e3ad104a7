"""The HTTP client for Kiro's generateAssistantResponse; the one place upstream errors are mapped (what
Kiro's refusals mean is read in refusals.py).

Each call takes an account from the pool. If Kiro refuses that account before anything has reached the
client (throttled, quota used up, capacity, a dead login; or a throttle as the answer's very first frame),
the account is rested or disabled and the call is made again with the next account; once the answer has
started, the account is kept. Only accounts that may use the payload's model are offered it; one that Kiro
refuses that model (INVALID_MODEL_ID) is rested for that model only.

Cache points (translate/cache_points.py) go only while KIRO_CACHE_POINTS is `auto` and no mark says Kiro refuses
them for the model; a call with them that Kiro answers 400 "Improperly formed request." is sent once more
without them, and if that one is answered the model is marked (upstream/cache_refusals.py).
"""
from __future__ import annotations

import json
import logging
import re
import time
import weakref
from functools import partial
from typing import Any, Callable, Iterator

import requests
import urllib3

from ..accounts.credential import Credential
from ..accounts.pool import AccountPool, Lease
from ..errors import ApiError, AuthenticationError, RateLimited, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ..settings import Settings
from ..translate import cache_points
from ..translate.conversation import with_conversation
from .cache_refusals import FIELD as CACHE_REFUSALS, REFUSAL_TTL, refuses, says_malformed, with_refusal
from .eventstream import EventStreamError
from .events import SILENCE, Event, Metering, NoAnswer, UpstreamException, iter_events
from .headers import chat_headers
from .reading import pieces
from .refusals import (RETRY_UNAVAILABLE, THROTTLE_KINDS, error_body, map_status, refusal_kind, retry_after,
                       says_token)
from .session import UpstreamSession

log = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # code points UTF-8 cannot carry (JSON pairs are joined)
# Opens the same call on another account after `error` refused this one: (response, lease), or raises an ApiError.
Reopen = Callable[[ApiError], "tuple[requests.Response, Lease]"]


def _is_read_timeout(exc: BaseException) -> bool:
    """True if a requests error wraps urllib3's ReadTimeoutError (or a socket timeout)."""
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, (urllib3.exceptions.ReadTimeoutError, TimeoutError))


def _utf8(text: str) -> bytes:
    """The body as UTF-8, the only encoding Kiro reads; each lone UTF-16 surrogate becomes U+FFFD.

    JSON lets a client send "\\ud800" alone, which no UTF-8 can carry. Replacing is tried only once
    the plain encode has failed, so well-formed text costs nothing extra.
    """
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text).encode()


class UpstreamStream:
    """An open upstream answer: its events, an abort() for a client that went away, and a close() that
    releases the connection and the account."""

    def __init__(self, response: requests.Response, lease: Lease | None = None, reopen: Reopen | None = None) -> None:
        self.response = response
        self.status = response.status_code
        self.request_id = response.headers.get("x-amzn-RequestId")
        self.account = lease.account.name if lease else None
        self.abandoned = False
        self._lease = lease
        self._reopen = reopen
        # A stream whose generator never ran (client gone first) still gives its account slot back.
        self._finalizer = weakref.finalize(self, lease.release) if lease else None

    def events(self, keepalive: float | None = None) -> Iterator[Event]:
        """Yield events as frames arrive; stream failures become ApiErrors; always closes. With `keepalive`
        seconds, SILENCE after each silence of that length (upstream/reading.py).

        A throttle as the very first frame (nothing yielded yet) rests the account and continues with the
        answer of another one. After abort() the events simply end: the client's doing, not the account's.
        """
        try:
            while True:
                started = False
                try:
                    for event in iter_events(pieces(self.response, keepalive)):
                        if not started:  # no failover once the answer has begun: let the request payload go
                            if event is SILENCE:
                                yield event
                                continue
                            started, self._reopen = True, None
                        if isinstance(event, Metering):
                            self._charge(event)
                        yield event
                    return
                except UpstreamException as exc:
                    if started or self.abandoned or self._reopen is None or exc.kind not in THROTTLE_KINDS:
                        raise
                    if not self._fail_over(exc, self._reopen):
                        return
        except (ApiError, EventStreamError, UpstreamException, requests.exceptions.RequestException) as exc:
            if self.abandoned:
                log.info("stopped reading Kiro's answer (account %s): the client went away", self.account)
                return
            error = self._error(exc)
            if error is exc:
                raise
            raise error from None
        finally:
            self.close()

    def _charge(self, event: Metering) -> None:
        """Tell the pool what Kiro charged the answering account (its remaining credits drop until the next poll)."""
        if self._lease is not None and event.credits is not None:
            self._lease.spent(event.credits)

    def abort(self) -> None:
        """Stop the answer because the client went away; safe to call from another greenlet than the reader's.

        Shuts the socket's read side down (close() from another greenlet would fail on the response buffer's
        lock), so a read blocked in events() returns and events() ends quietly, counting no account error;
        the reader's own `finally` then closes the response. A no-op once the response is released.
        """
        self.abandoned = True
        try:
            self.response.raw.shutdown()
        except (AttributeError, ValueError, RuntimeError, OSError):  # already released or closed
            pass

    def _fail_over(self, exc: UpstreamException, reopen: Reopen) -> bool:
        """Rest this account and switch to the same call on another one; False if the client left meanwhile."""
        error = self._error(exc)  # rests the account and releases its slot
        log.info("Kiro account %s throttled the answer before its first event (%s); failing over", self.account,
                 exc.message)
        self.response.close()
        self._lease = None  # a failure to reopen is no error of the account just rested
        response, lease = reopen(error)
        if self._finalizer is not None:
            self._finalizer.detach()
        self.response, self._lease, self.account = response, lease, lease.account.name
        self.request_id = response.headers.get("x-amzn-RequestId")
        self._finalizer = weakref.finalize(self, lease.release)
        return not self.abandoned

    def _error(self, exc: Exception) -> ApiError:
        """The client-facing error for a broken stream, after telling the pool what it says about the account."""
        if isinstance(exc, ApiError):
            return self._failed("stream", exc)
        if isinstance(exc, NoAnswer):
            return self._failed("stream", UpstreamError(str(exc)))
        if isinstance(exc, EventStreamError):
            return self._failed("stream", UpstreamError(f"Kiro sent a malformed event stream: {exc}"))
        if isinstance(exc, UpstreamException):
            if exc.kind in THROTTLE_KINDS:
                error = RateLimited(f"Kiro is throttling requests: {exc.message}", retry_after=RETRY_UNAVAILABLE)
                if self._lease:
                    self._lease.refused("throttled", error, None)  # rest the account for the next requests
                return error
            message = f"Kiro reported an error mid-answer ({exc.kind}): {exc.message}"
            return self._failed("stream", UpstreamError(message))
        # requests reports a read timeout mid-body as a ConnectionError(ReadTimeoutError)
        if isinstance(exc, requests.exceptions.Timeout) or _is_read_timeout(exc):
            return self._failed("timeout", UpstreamTimeout("Kiro stopped sending data (read timeout)"))
        return self._failed("stream", UpstreamError(f"The connection to Kiro broke mid-answer: {type(exc).__name__}"))

    def _failed(self, kind: str, error: ApiError) -> ApiError:
        if self._lease:
            self._lease.failed(kind, error)
        return error

    def close(self) -> None:
        """Close the upstream connection and release the account (idempotent)."""
        self.response.close()
        if self._lease:
            self._lease.release()


def _model_of(payload: dict[str, Any]) -> str | None:
    """The Kiro model id a generateAssistantResponse payload asks for, if it names one."""
    try:
        model = payload["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]
    except (KeyError, TypeError):
        return None
    return model if isinstance(model, str) else None


class _Refused(Exception):
    """This account cannot take the call; the pool already knows, try the next one."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class CodeWhispererClient:
    """Sends generateAssistantResponse calls through the account pool; refreshes once on a token error."""

    def __init__(self, settings: Settings, pool: AccountPool, session: UpstreamSession,
                 on_open: Callable[[UpstreamStream], None] | None = None,
                 on_cache_refused: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.session = session
        self.on_open = on_open  # told of every call that opened (the request log notes its account)
        self.on_cache_refused = on_cache_refused  # told the model of a call answered only without cache points
        self.url = f"{settings.api_base}/generateAssistantResponse"
        self.timeout = (settings.connect_timeout, settings.read_timeout)
        self._no_cache: dict[str, float] = {}  # model -> until when this worker sends it no cache points

    def send(self, payload: dict[str, Any], conversation: str | None = None) -> UpstreamStream:
        """Start a call, failing over between accounts; raise an ApiError before any byte reaches the client.

        `conversation` (translate.conversation.conversation_key) makes the payload's conversationId and
        agentContinuationId the same for every turn of one conversation on one account; without it they stay
        as the payload has them.
        """
        tried: set[str] = set()
        model = _model_of(payload)
        response, lease = self._start(payload, conversation, tried, None, model)
        upstream = UpstreamStream(response, lease, partial(self._start, payload, conversation, tried, model=model))
        if self.on_open is not None:
            self.on_open(upstream)
        return upstream

    def _start(self, payload: dict[str, Any], conversation: str | None, tried: set[str], last: ApiError | None,
               model: str | None = None) -> tuple[requests.Response, Lease]:
        """Open the call on the best account not in `tried` (added to it) that may use `model`, then on the
        next, until one answers 200."""
        while True:
            lease = self.pool.acquire(tried, last, model)
            tried.add(lease.account.name)
            try:
                response = self._open(lease, payload, conversation)
            except _Refused as refused:  # the lease is released and the pool knows why
                last = refused.error
                if len(self.pool.accounts) > 1:
                    log.info("Kiro account %s refused the call (%s); failing over", lease.account.name,
                             refused.error.message)
                continue
            except ApiError as exc:
                if exc.status >= 500:
                    lease.failed("upstream", exc)
                lease.release()
                raise
            except BaseException:
                lease.release()
                raise
            lease.served()
            return response, lease

    def _open(self, lease: Lease, payload: dict[str, Any], conversation: str | None) -> requests.Response:
        """POST with this account's credential (refreshed once if Kiro calls it invalid); 200 or an error."""
        tokens = lease.account.tokens
        credential = self._credential(lease, tokens.current)
        machine_id = tokens.machine_id()
        if conversation is not None:
            payload = with_conversation(payload, conversation, machine_id)
        if cache_points.count(payload) and not self._may_cache(lease.model or ""):
            payload = cache_points.without(payload)
        response, attempt = self._post(payload, credential, machine_id, 1), 1
        if response.status_code in (401, 403) and says_token(str(error_body(response).get("message", ""))):
            response.close()
            log.info("upstream rejected the access token of %s (HTTP %s); refreshing once", lease.account.name,
                     response.status_code)
            stale = credential
            credential = self._credential(lease, lambda: tokens.refresh(stale))
            response, attempt = self._post(payload, credential, machine_id, 2), 2
        if response.status_code == 400 and cache_points.count(payload) and says_malformed(400, error_body(response)):
            response.close()
            response = self._post(cache_points.without(payload), credential, machine_id, attempt + 1)
            if response.status_code == 200:
                self._refuse_cache(lease)
        if response.status_code == 200:
            return response
        try:
            error, kind = map_status(response), refusal_kind(response)
        finally:
            response.close()
        if kind is None:
            raise error
        lease.refused(kind, error, retry_after(response))
        raise _Refused(error)

    def _may_cache(self, model: str) -> bool:
        """Whether a call for `model` may carry cache points: the setting allows them and no mark forbids them."""
        if self.settings.cache_points == "off":
            return False
        now = time.time()
        return self._no_cache.get(model, 0.0) <= now and not refuses(self.pool.states(), model, now)

    def _refuse_cache(self, lease: Lease) -> None:
        """Kiro refused the call's cache points and took it without: mark its model, here and for every process."""
        model, now = lease.model or "", time.time()
        self._no_cache[model] = now + REFUSAL_TTL
        if self.on_cache_refused is not None:
            self.on_cache_refused(model)
        try:
            fields = self.pool.states(fresh=True).get(lease.account.name, {})
            self.pool.write(lease.account.name, CACHE_REFUSALS, with_refusal(fields, model, now))
        except (OSError, TimeoutError, ApiError) as exc:  # this worker remembers it anyway
            log.warning("could not share that Kiro refuses cache points for %s: %s", model, type(exc).__name__)
        log.warning("Kiro answered \"Improperly formed request\" to a call for %s with cache points and answered it "
                    "without them (account %s); sending none for %s for %.0f h", model, lease.account.name, model,
                    REFUSAL_TTL / 3600)

    @staticmethod
    def _credential(lease: Lease, get: Callable[[], Credential]) -> Credential:
        """The account's credential; a dead or missing login disables the account, a failed refresh skips it."""
        try:
            return get()
        except AuthenticationError as exc:
            lease.disable(exc)
            raise _Refused(exc) from None
        except ApiError as exc:
            lease.failed("refresh", exc)
            raise _Refused(exc) from None

    def _post(self, payload: dict[str, Any], credential: Credential, machine_id: str, attempt: int
              ) -> requests.Response:
        """One try of the call (`attempt` counts this account's tries, as the IDE's SDK counts them)."""
        arn = self.settings.profile_arn or credential.profile_arn
        body = {**payload, "profileArn": arn} if arn else payload
        data = _utf8(json.dumps(body, ensure_ascii=False))
        headers = chat_headers(credential, self.settings.client_version, machine_id, attempt)
        try:
            response = self.session.post_stream(self.url, data, headers, self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise UpstreamTimeout("Could not connect to Kiro in time") from None
        except requests.exceptions.ReadTimeout:
            raise UpstreamTimeout("Kiro did not start answering in time") from None
        except requests.exceptions.ConnectionError:
            raise UpstreamUnavailable("Could not reach Kiro (connection failed)",
                                      retry_after=RETRY_UNAVAILABLE) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamError(f"Request to Kiro failed: {type(exc).__name__}") from None
        response.request.body = None  # the sent prompt, as long as the conversation: not kept while Kiro answers
        return response
