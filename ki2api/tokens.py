"""The Kiro credential: load it, refresh it once for every greenlet, thread and worker process, report on it.

Refresh errors are mapped here only: a dead refresh token becomes AuthenticationError (log in again);
transport failures, timeouts, 5xx and unreadable answers become UpstreamUnavailable.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from .errors import ApiError, AuthenticationError, UpstreamError, UpstreamUnavailable
from .settings import Settings
from .token_store import Credential, MissingCredential, Snapshot, StoreError, TokenStore, format_expiry

__all__ = ["Credential", "TokenManager"]

log = logging.getLogger(__name__)

LOCK_SLACK = 5.0  # seconds beyond refresh_timeout that a waiter gives the refresher
FAILURE_COOLDOWN = 5.0  # waiters queued behind a failed refresh fail fast instead of calling again
_DEAD_WORDS = ("invalid_grant", "invalidgrant", "invalid_client", "invalidclient", "unauthorized_client",
               "refresh token", "expired")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_SOCIAL_HEADERS = {"Accept": "application/json, text/plain, */*", "User-Agent": "KiroIDE"}
_OIDC_HEADERS = {"x-amz-user-agent": "aws-sdk-js/3.738.0 ua/2.1 os/other lang/js md/browser#unknown_unknown "
                                     "api/sso-oidc#3.738.0 m/E KiroIDE"}


class TokenManager:
    """Hands out a usable Kiro credential; one per worker process, built by create_app."""

    def __init__(self, settings: Settings, session: requests.Session) -> None:
        self.settings = settings
        self.session = session
        self.store = TokenStore(settings.token_file, settings.state_dir, settings.access_token, settings.refresh_token)
        self._lock = threading.Lock()  # created after gevent patched threading, so greenlets queue on it
        self._snapshot: Snapshot | None = None
        self._error: str | None = None
        self._dead: str | None = None  # a refresh token the endpoint rejected: never sent again
        self._failure: tuple[str | None, float, ApiError] | None = None
        self._last: dict[str, Any] | None = None

    def current(self) -> Credential:
        """The credential, refreshed first if it expires within refresh_margin; AuthenticationError if there is none."""
        credential = self._loaded().credential
        if not credential.expires_within(self.settings.refresh_margin):
            return credential
        try:
            return self._refresh_once(credential)
        except ApiError as exc:
            if credential.expires_within(0):
                raise
            log.warning("early token refresh failed, using the current token until it expires: %s", exc.message)
            return credential

    def refresh(self, stale: Credential) -> Credential:
        """A credential newer than `stale` (which upstream rejected): someone else's refresh, or our own."""
        self._loaded()
        return self._refresh_once(stale)

    def status(self) -> dict[str, Any]:
        """Credential health for /health; never contains a token, secret or client id."""
        try:
            credential: Credential | None = self._loaded().credential
        except ApiError:
            credential = None
        now = datetime.now(timezone.utc)
        expires = credential.expires_at if credential else None
        return {
            "loaded": credential is not None,
            "source": credential.source if credential else None,
            "path": str(self.store.token_path) if self.store.source == "file" else None,
            "auth_method": credential.auth_method if credential else None,
            "expires_at": format_expiry(expires) if expires else None,
            "expires_in_seconds": int((expires - now).total_seconds()) if expires else None,
            "last_refresh": dict(self._last) if self._last else None,
            "needs_login": credential is None or self._needs_login(credential),
            "error": self._error,
        }

    def _needs_login(self, credential: Credential) -> bool:
        if credential.refresh_token is not None and credential.refresh_token == self._dead:
            return True
        return credential.refresh_token is None and credential.expires_within(0)

    def _loaded(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.stamp == self.store.stamp():
            return snapshot
        return self._reload()

    def _reload(self) -> Snapshot:
        """Read the store again; keep the previous credential if the file is only momentarily unreadable."""
        try:
            snapshot = self.store.load()
        except MissingCredential as exc:
            self._snapshot, self._error = None, str(exc)
            raise AuthenticationError(
                f"No Kiro credential: {self.store.token_path} does not exist. Log in to Kiro IDE (which writes "
                "that file; KIRO_TOKEN_FILE points elsewhere), or set KIRO_ACCESS_TOKEN/KIRO_REFRESH_TOKEN.") from None
        except StoreError as exc:
            self._error = str(exc)
            if self._snapshot is None:
                raise AuthenticationError(f"The Kiro credential cannot be used: {exc}. Log in to Kiro IDE again, "
                                          "or set KIRO_ACCESS_TOKEN/KIRO_REFRESH_TOKEN.") from None
            log.warning("keeping the loaded credential: %s", exc)
            return self._snapshot
        if self._snapshot is None or snapshot.credential != self._snapshot.credential:
            log.info("loaded the Kiro %s credential from %s", snapshot.credential.auth_method, snapshot.credential.source)
        self._snapshot = snapshot
        return snapshot

    def _refresh_once(self, stale: Credential) -> Credential:
        """Refresh under the thread lock and the cross-process lock, unless someone already did."""
        wait = self.settings.refresh_timeout + LOCK_SLACK
        if not self._lock.acquire(timeout=wait):
            raise UpstreamUnavailable("Timed out waiting for another request to refresh the Kiro token",
                                      retry_after=5.0)
        try:
            newer = _newer(stale, self._snapshot)
            if newer is not None:
                return newer
            try:
                with self.store.lock(wait):
                    snapshot = self._reload()
                    return _newer(stale, snapshot) or self._refresh_locked(snapshot)
            except TimeoutError:
                raise UpstreamUnavailable("Timed out waiting for another ki2api process to refresh the Kiro token",
                                          retry_after=5.0) from None
        finally:
            self._lock.release()

    def _refresh_locked(self, snapshot: Snapshot) -> Credential:
        """Call the endpoint once (both locks held), persist the answer, record the outcome."""
        credential = snapshot.credential
        self._check_refreshable(credential)
        try:
            fresh = self._call(credential)
        except ApiError as exc:
            self._record(False, exc.message)
            if isinstance(exc, AuthenticationError):
                self._dead = credential.refresh_token
            else:
                self._failure = (credential.refresh_token, time.monotonic(), exc)
            log.warning("Kiro token refresh failed: %s", exc.message)
            raise
        try:
            self._snapshot, where = self.store.save(fresh, snapshot)
        except OSError as exc:  # still serve the new token from memory; other workers will have to log in
            self._snapshot, where = replace(snapshot, credential=fresh), "memory only"
            log.error("could not save the refreshed Kiro token (%s); it lives in this process only", exc.strerror)
        self._record(True, None)
        remaining = int((fresh.expires_at - datetime.now(timezone.utc)).total_seconds()) if fresh.expires_at else -1
        log.info("refreshed the Kiro %s token (source %s, saved to %s); it expires in %d s",
                 fresh.auth_method, fresh.source, where, remaining)
        return fresh

    def _check_refreshable(self, credential: Credential) -> None:
        token = credential.refresh_token
        if token is None:
            raise AuthenticationError("The Kiro access token is expired or was rejected, and there is no refresh "
                                      "token: log in to Kiro IDE again, or set KIRO_REFRESH_TOKEN.")
        if token == self._dead:
            raise _dead_token_error(credential, "it was rejected before")
        if credential.auth_method == "idc" and not (credential.client_id and credential.client_secret):
            raise AuthenticationError(f"The IdC login in {self.store.token_path} has no client registration "
                                      "(clientId/clientSecret in the <clientIdHash>.json next to it): log in to "
                                      "Kiro IDE again.")
        failure = self._failure
        if failure and failure[0] == token and time.monotonic() - failure[1] < FAILURE_COOLDOWN:
            raise type(failure[2])(failure[2].message, retry_after=FAILURE_COOLDOWN)

    def _call(self, credential: Credential) -> Credential:
        """POST the refresh request and turn the answer into the refreshed credential."""
        url, body, headers = self._request_for(credential)
        timeout = self.settings.refresh_timeout
        try:
            response = self.session.post(url, json=body, headers=headers, timeout=timeout)
        except requests.exceptions.Timeout:
            raise UpstreamUnavailable(f"Kiro's token endpoint did not answer within {timeout:g} s",
                                      retry_after=5.0) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(f"Could not reach Kiro's token endpoint ({type(exc).__name__})",
                                      retry_after=5.0) from None
        try:
            return _refreshed(credential, response)
        finally:
            response.close()

    def _request_for(self, credential: Credential) -> tuple[str, dict[str, str], dict[str, str]]:
        token = credential.refresh_token or ""
        if credential.auth_method == "social":
            return self.settings.refresh_url, {"refreshToken": token}, _SOCIAL_HEADERS
        url = self.settings.oidc_url
        if url == Settings.oidc_url and credential.region != "us-east-1" and _REGION.fullmatch(credential.region):
            url = f"https://oidc.{credential.region}.amazonaws.com/token"  # IdC tokens refresh in their own region
        body = {"clientId": credential.client_id or "", "clientSecret": credential.client_secret or "",
                "grantType": "refresh_token", "refreshToken": token}
        return url, body, _OIDC_HEADERS

    def _record(self, ok: bool, error: str | None) -> None:
        self._last = {"at": format_expiry(datetime.now(timezone.utc)), "ok": ok, "error": error}
        self._error = error


def _newer(stale: Credential, snapshot: Snapshot | None) -> Credential | None:
    """The snapshot's credential if it is another, still-fresh access token than `stale`."""
    if snapshot is None:
        return None
    credential = snapshot.credential
    if credential.access_token == stale.access_token or credential.expires_within(0):
        return None
    return credential


def _refreshed(credential: Credential, response: requests.Response) -> Credential:
    """The credential after a refresh answer, or the ApiError that answer means."""
    status = response.status_code
    if status in (400, 401, 403) and (status == 401 or _says_dead(response.text)):
        raise _dead_token_error(credential, f"HTTP {status} {_error_code(response)}".strip())
    if status == 429 or status >= 500:
        raise UpstreamUnavailable(f"Kiro's token endpoint answered HTTP {status}", retry_after=5.0)
    if status != 200:
        raise UpstreamError(f"Kiro's token endpoint refused the refresh (HTTP {status} {_error_code(response)})")
    try:
        body = response.json()
    except ValueError:
        body = None
    access = body.get("accessToken") if isinstance(body, dict) else None
    expires_in = body.get("expiresIn") if isinstance(body, dict) else None
    if not isinstance(access, str) or not access or isinstance(expires_in, bool) \
            or not isinstance(expires_in, (int, float)) or expires_in <= 0:
        raise UpstreamUnavailable("Kiro's token endpoint sent an unreadable answer", retry_after=5.0)
    rotated, arn = body.get("refreshToken"), body.get("profileArn")
    return replace(credential, access_token=access,
                   refresh_token=rotated if isinstance(rotated, str) and rotated else credential.refresh_token,
                   expires_at=datetime.now(timezone.utc) + timedelta(seconds=expires_in),
                   profile_arn=arn if isinstance(arn, str) and arn else credential.profile_arn)


def _says_dead(text: str) -> bool:
    lowered = text[:2000].lower()
    return any(word in lowered for word in _DEAD_WORDS)


def _error_code(response: requests.Response) -> str:
    """The OAuth `error` code of a refusal (a fixed vocabulary, so never a secret), or ''."""
    try:
        body = response.json()
    except ValueError:
        return ""
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and re.fullmatch(r"[A-Za-z_]{1,64}", code) else ""


def _dead_token_error(credential: Credential, detail: str) -> AuthenticationError:
    where = "set a new KIRO_REFRESH_TOKEN" if credential.source == "env" else "ki2api picks the new login up"
    return AuthenticationError(f"Kiro's refresh token is no longer valid ({detail}): log in again in Kiro IDE "
                               f"({where}), then retry.")
