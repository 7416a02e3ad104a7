"""One account's Kiro credential: load it, refresh it once for every greenlet, worker and replica, report on it.

Refresh transport failures and timeouts become UpstreamUnavailable here; refresh.py says what an answer means.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable

import requests

from ..errors import ApiError, AuthenticationError, UpstreamError, UpstreamUnavailable
from ..settings import Settings
from .credential import Credential, fingerprint, format_expiry
from .files import StoreError
from .identity import MachineId
from .protocols import NoSharedLock
from .refresh import dead_token_error, post_within, refresh_request, refreshed
from .token_store import MissingCredential, Snapshot, TokenStore

log = logging.getLogger(__name__)

LOCK_SLACK = 5.0  # seconds the refresh lock outlives the refresh calls: time to save the answer
FAILURE_COOLDOWN = 5.0  # seconds every worker and replica fails fast after a failed refresh instead of calling again
NO_LOCK_RETRY = 5.0  # Retry-After when no lock serialises the replicas' refresh (Redis away, no shared token file)


class TokenManager:
    """Hands out one account's usable Kiro credential; one per account and worker process, built by create_app."""

    def __init__(self, settings: Settings, session: requests.Session, store: TokenStore | None = None,
                 on_refresh: Callable[[bool, str | None], None] | None = None,
                 identity: MachineId | None = None) -> None:
        self.settings = settings
        self.session = session
        self.store = store or TokenStore(settings.token_file, settings.state_dir, settings.access_token,
                                         settings.refresh_token)
        # The machine id this account shows Kiro on every call (chat, usage, social refresh).
        self.identity = identity or MachineId(self.store.name, self.store.share)
        self._lock = threading.Lock()  # created after gevent patched threading, so greenlets queue on it
        self._snapshot: Snapshot | None = None
        self._error: str | None = None  # why the credential could not be loaded, if it could not
        self._dead: str | None = None  # a refresh token the endpoint rejected: never sent again
        self._failure: tuple[str | None, float, ApiError] | None = None
        self._last: dict[str, Any] | None = None  # this process's last refresh call (the shared one may be newer)
        # Told of every call to the refresh endpoint: (ok, account name); create_app passes the metrics' counter.
        self.on_refresh = on_refresh

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
            log.warning("account %s: early token refresh failed, using the current token until it expires: %s",
                        self.store.name, exc.message)
            return credential

    def refresh(self, stale: Credential) -> Credential:
        """A credential newer than `stale` (which upstream rejected): someone else's refresh, or our own."""
        self._loaded()
        return self._refresh_once(stale)

    def machine_id(self) -> str:
        """The machine id this account shows Kiro (identity.py)."""
        return self.identity.value()

    def fingerprint(self) -> str | None:
        """A digest of the current refresh token (None without one): it changes when the person logs in again."""
        try:
            credential = self._loaded().credential
        except ApiError:
            return None
        return fingerprint(credential.refresh_token or credential.access_token)

    def publish(self) -> None:
        """Re-read the credential now, files and shared copies, and put it in the shared state if it is newer
        than the shared copy (Redis has returned, and may have missed a refresh meanwhile)."""
        try:
            self._snapshot = self.store.load(publish=True)
        except (StoreError, OSError) as exc:
            log.warning("account %s: could not re-read the Kiro token: %s", self.store.name, exc)

    def status(self, shared: dict[str, Any] | None = None) -> dict[str, Any]:
        """Credential health for /health, the same from every worker and replica: the last refresh and a dead
        login come from the shared state (`shared`: this account's fields, if the caller has read them).
        Never contains a token, secret or client id."""
        try:
            credential: Credential | None = self._loaded().credential
        except ApiError:
            credential = None
        fields = self.store.shared() if shared is None else shared
        file_state, file_error = self.store.file_state()
        last = max(filter(None, [self._last, fields.get("last_refresh")]), key=lambda r: float(r.get("at", 0)),
                   default=None)
        now = datetime.now(timezone.utc)
        expires = credential.expires_at if credential else None
        return {
            "loaded": credential is not None,
            "source": credential.source if credential else None,
            "path": self.store.where,
            "token_file": file_state,  # ok | missing | unreadable, read now by whichever worker answers; None: no file
            "auth_method": credential.auth_method if credential else None,
            "expires_at": format_expiry(expires) if expires else None,
            "expires_in_seconds": int((expires - now).total_seconds()) if expires else None,
            "last_refresh": _outcome(last) if last else None,
            "needs_login": credential is None or self._needs_login(credential, fields),
            "error": self._error or file_error or (str(last.get("error")) if last and not last.get("ok") else None),
        }

    def _needs_login(self, credential: Credential, shared: dict[str, Any]) -> bool:
        token = credential.refresh_token
        if token is not None and (token == self._dead or self.store.dead_reason(credential, shared)):
            return True
        return token is None and credential.expires_within(0)

    def _loaded(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and snapshot.stamp == self.store.stamp():
            return snapshot
        return self._reload()

    def _reload(self, publish: bool = False) -> Snapshot:
        """Read the store again; keep the previous credential if the file is only momentarily unreadable."""
        try:
            snapshot = self.store.load(publish)
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
            log.warning("account %s: keeping the loaded credential: %s", self.store.name, exc)
            return self._snapshot
        self._error = None
        if self._snapshot is None or snapshot.credential != self._snapshot.credential:
            credential = snapshot.credential
            log.info("account %s: loaded the Kiro %s credential from %s", self.store.name, credential.auth_method,
                     credential.source)
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
                with self.store.lock(wait):  # a Redis lock expires after `wait`: the calls must end before
                    deadline = time.monotonic() + self.settings.refresh_timeout
                    snapshot = self._reload(publish=True)
                    return _newer(stale, snapshot) or self._refresh_locked(snapshot, deadline)
            except TimeoutError:
                raise UpstreamUnavailable("Timed out waiting for another ki2api process to refresh the Kiro token",
                                          retry_after=5.0) from None
            except NoSharedLock as exc:
                log.warning("account %s: not refreshing the Kiro token now: %s", self.store.name, exc)
                raise UpstreamUnavailable(f"The Kiro token needs a refresh, but {exc}: refreshing now could spend "
                                          "the refresh token twice. Retry shortly.",
                                          retry_after=NO_LOCK_RETRY) from None
        finally:
            self._lock.release()

    def _refresh_locked(self, snapshot: Snapshot, deadline: float) -> Credential:
        """Call the endpoint once (both locks held; every call done by `deadline`), persist the answer, record
        the outcome."""
        credential = snapshot.credential
        self._check_refreshable(credential)
        try:
            try:
                fresh = self._call(credential, deadline)
            except AuthenticationError:
                retaken = self._retaken(credential)
                if retaken is None:
                    raise
                snapshot, credential = retaken, retaken.credential
                fresh = self._call(credential, deadline)
        except ApiError as exc:
            kind = "dead" if isinstance(exc, AuthenticationError) else \
                "unavailable" if isinstance(exc, UpstreamUnavailable) else "refused"
            self._record(False, exc.message, credential, kind)  # before the locks go: waiters see it
            if isinstance(exc, AuthenticationError):
                self._dead = credential.refresh_token
                self.store.mark_dead(credential, exc.message)  # still under the locks: nobody tries it again
            else:
                self._failure = (credential.refresh_token, time.monotonic(), exc)
            log.warning("account %s: Kiro token refresh failed: %s", self.store.name, exc.message)
            raise
        try:
            self._snapshot, where = self.store.save(fresh, snapshot)
        except OSError as exc:  # still serve the new token from memory; other workers will have to log in
            self._snapshot, where = replace(snapshot, credential=fresh), "memory only"
            log.error("account %s: could not save the refreshed Kiro token (%s); it lives in this process only",
                      self.store.name, exc.strerror)
        self._record(True, None, fresh)
        remaining = int((fresh.expires_at - datetime.now(timezone.utc)).total_seconds()) if fresh.expires_at else -1
        log.info("account %s: refreshed the Kiro %s token (source %s, saved to %s); it expires in %d s",
                 self.store.name, fresh.auth_method, fresh.source, where, remaining)
        return fresh

    def _retaken(self, rejected: Credential) -> Snapshot | None:
        """After the endpoint called our refresh token dead: another one shared since (say, by a replica that
        refreshed during a Redis outage), or None if there is none and the login really is dead."""
        try:
            snapshot = self._reload()
        except ApiError:
            return None
        token = snapshot.credential.refresh_token
        if token is None or token == rejected.refresh_token:
            return None
        log.info("account %s: our refresh token was spent elsewhere; refreshing with the one shared since",
                 self.store.name)
        return snapshot

    def _check_refreshable(self, credential: Credential) -> None:
        token = credential.refresh_token
        if token is None:
            raise AuthenticationError("The Kiro access token is expired or was rejected, and there is no refresh "
                                      "token: log in to Kiro IDE again, or set KIRO_REFRESH_TOKEN.")
        if token == self._dead:
            raise dead_token_error(credential, "it was rejected before")
        shared = self.store.shared()
        why = self.store.dead_reason(credential, shared)
        if why:
            self._dead = token
            raise AuthenticationError(why)
        if credential.auth_method == "idc" and not (credential.client_id and credential.client_secret):
            raise AuthenticationError(f"The IdC login in {self.store.where} has no client registration "
                                      "(clientId/clientSecret inline, or in the <clientIdHash>.json next to it): "
                                      "log in to Kiro IDE again.")
        failure = self._failure
        if failure and failure[0] == token and time.monotonic() - failure[1] < FAILURE_COOLDOWN:
            raise type(failure[2])(failure[2].message, retry_after=FAILURE_COOLDOWN)
        self._check_shared_failure(token, shared.get("last_refresh") or {})

    @staticmethod
    def _check_shared_failure(token: str, last: dict[str, Any]) -> None:
        """Fail fast if any worker or replica failed to refresh this same token less than FAILURE_COOLDOWN
        ago: one round of requests is one call to the endpoint, and a waiter gives up with the refresh it
        waited on."""
        if last.get("ok") or last.get("kind") not in ("unavailable", "refused"):
            return
        if last.get("fingerprint") != fingerprint(token):
            return
        try:
            left = float(last.get("at", 0)) + FAILURE_COOLDOWN - time.time()
        except (TypeError, ValueError):
            return
        if left <= 0:
            return
        message = str(last.get("error") or "Kiro's token endpoint failed")
        if last["kind"] == "unavailable":
            raise UpstreamUnavailable(message, retry_after=max(1.0, left))
        raise UpstreamError(message)

    def _call(self, credential: Credential, deadline: float) -> Credential:
        """POST the refresh request, answered in full by `deadline`, and turn the answer into the credential."""
        url, body, headers = refresh_request(credential, self.settings, self.machine_id())
        try:
            response = post_within(self.session, url, body, headers, deadline - time.monotonic())
        except requests.exceptions.Timeout:
            raise UpstreamUnavailable(f"Kiro's token endpoint did not answer within "
                                      f"{self.settings.refresh_timeout:g} s",
                                      retry_after=5.0) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamUnavailable(f"Could not reach Kiro's token endpoint ({type(exc).__name__})",
                                      retry_after=5.0) from None
        try:
            return refreshed(credential, response)
        finally:
            response.close()

    def _record(self, ok: bool, error: str | None, spent: Credential, kind: str | None = None) -> None:
        self._last = {"at": time.time(), "ok": ok, "error": error}
        # so that every worker's /health shows it, and every worker honours a failure's cooldown
        self.store.note_refresh({**self._last, "fingerprint": fingerprint(spent.refresh_token), "kind": kind})
        if self.on_refresh is not None:
            self.on_refresh(ok, self.store.name)


def _outcome(last: dict[str, Any]) -> dict[str, Any]:
    """A shared last-refresh record as /health shows it."""
    at = datetime.fromtimestamp(float(last.get("at", 0)), timezone.utc)
    return {"at": format_expiry(at), "ok": bool(last.get("ok")), "error": last.get("error")}


def _newer(stale: Credential, snapshot: Snapshot | None) -> Credential | None:
    """The snapshot's credential if it is another, still-fresh access token than `stale`."""
    if snapshot is None:
        return None
    credential = snapshot.credential
    if credential.access_token == stale.access_token or credential.expires_within(0):
        return None
    return credential
