"""Kiro's token endpoints: the refresh request for a credential, its call within a total deadline, and what an
answer means.

Refresh errors are mapped here only: a dead refresh token becomes AuthenticationError (log in again);
429, 5xx and unreadable answers become UpstreamUnavailable; other refusals UpstreamError.
"""
from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from ..errors import AuthenticationError, UpstreamError, UpstreamUnavailable
from ..settings import Settings
from ..upstream.headers import idc_refresh_headers, social_refresh_headers
from .credential import Credential

_DEAD_WORDS = ("invalid_grant", "invalidgrant", "invalid_client", "invalidclient", "unauthorized_client",
               "refresh token", "expired")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def refresh_request(credential: Credential, settings: Settings, machine_id: str
                    ) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL, JSON body and headers that refresh this credential (social or IdC, in its own region)."""
    token = credential.refresh_token or ""
    if credential.auth_method == "social":
        headers = social_refresh_headers(settings.client_version, machine_id)
        return settings.refresh_url, {"refreshToken": token}, headers
    url = settings.oidc_url
    if url == Settings.oidc_url and credential.region != "us-east-1" and _REGION.fullmatch(credential.region):
        url = f"https://oidc.{credential.region}.amazonaws.com/token"  # IdC tokens refresh in their own region
    body = {"clientId": credential.client_id or "", "clientSecret": credential.client_secret or "",
            "grantType": "refresh_token", "refreshToken": token}
    return url, body, idc_refresh_headers()


def post_within(session: requests.Session, url: str, body: dict[str, str], headers: dict[str, str],
                seconds: float) -> requests.Response:
    """POST and read the whole answer within `seconds` in total; requests.exceptions.Timeout past that.

    requests' own timeout bounds the connect and each socket read, not the sum: an endpoint trickling its
    answer could hold the refresh (and the refresh lock, past its expiry) for minutes. So the call runs in
    a thread (a greenlet under gevent) that is waited for at most `seconds`; a late answer is dropped.
    """
    if seconds <= 0:
        raise requests.exceptions.Timeout("no time left for the refresh call")
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = session.post(url, json=body, headers=headers, timeout=seconds)
        except Exception as exc:  # handed to the waiting caller
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="kiro-token-refresh", daemon=True).start()
    if not done.wait(seconds):
        raise requests.exceptions.Timeout(f"no complete answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


def refreshed(credential: Credential, response: requests.Response) -> Credential:
    """The credential after a refresh answer, or the ApiError that answer means."""
    status = response.status_code
    if status in (400, 401, 403) and (status == 401 or _says_dead(response.text)):
        raise dead_token_error(credential, f"HTTP {status} {_error_code(response)}".strip())
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


def dead_token_error(credential: Credential, detail: str) -> AuthenticationError:
    """The 401 for a dead refresh token, telling the person how to log this credential in again."""
    where = {"env": "set a new KIRO_REFRESH_TOKEN", "accounts": "and put the new refreshToken into the accounts file"}\
        .get(credential.source, "ki2api picks the new login up")
    return AuthenticationError(f"Kiro's refresh token is no longer valid ({detail}): log in again in Kiro IDE "
                               f"({where}), then retry.")
