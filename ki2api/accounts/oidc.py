"""AWS SSO OIDC's device flow, for Builder ID and IAM Identity Center logins without the IDE.

RegisterClient (POST /client/register) -> StartDeviceAuthorization (POST /device_authorization) -> poll
CreateToken (POST /token, grant urn:ietf:params:oauth:grant-type:device_code) at the interval the service
gives, five seconds slower after each `slow_down`. Bodies are JSON, as the IDE's SDK sends them. Endpoints and
fields: docs/protocol.md ("Logins without the IDE"). No printing here: the caller shows the code and URL.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import requests

from .credential import format_expiry

BUILDER_ID_START_URL = "https://view.awsapps.com/start"
DEFAULT_REGION = "us-east-1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = ("codewhisperer:completions", "codewhisperer:analysis", "codewhisperer:conversations",
          "codewhisperer:transformations", "codewhisperer:taskassist")
SLOW_DOWN_STEP = 5.0  # seconds added to the interval at each slow_down (RFC 8628 §3.5)
TIMEOUT = 30.0
_MESSAGES = {
    "expired_token": "the code expired before it was approved; run the login again",
    "access_denied": "the login was refused in the browser (access denied); run the login again to retry",
    "invalid_client": "the client registration was refused; run the login again",
    "unauthorized_client": "this client may not use the device flow here; check --start-url and --region",
    "invalid_request": "the login service refused the request as malformed",
}


class LoginError(Exception):
    """The login could not complete; the message says why and what to do (it never holds a secret)."""


def base_url(region: str) -> str:
    """AWS SSO OIDC's endpoint in `region`."""
    return f"https://oidc.{region}.amazonaws.com"


@dataclass(frozen=True)
class Client:
    """A registered public client: its id and secret, and when the secret expires (epoch seconds)."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    expires_at: float


@dataclass(frozen=True)
class Device:
    """A started device authorization: what the person opens and types, and what ki2api polls with."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: float
    interval: float


class DeviceFlow:
    """One device-flow login against one OIDC endpoint."""

    def __init__(self, session: requests.Session, region: str = DEFAULT_REGION,
                 start_url: str = BUILDER_ID_START_URL, url: str | None = None,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> None:
        self.session = session
        self.region = region
        self.start_url = start_url
        self.url = (url or base_url(region)).rstrip("/")
        self._sleep = sleep or time.sleep
        self._clock = clock or time.monotonic

    def register(self) -> Client:
        """RegisterClient: a public client allowed the device-code and refresh-token grants."""
        data = self._post("/client/register", {
            "clientName": "ki2api", "clientType": "public", "scopes": list(SCOPES),
            "grantTypes": [DEVICE_GRANT, "refresh_token"], "issuerUrl": self.start_url})
        return Client(_text(data, "clientId"), _text(data, "clientSecret"),
                      float(data.get("clientSecretExpiresAt") or 0))

    def start(self, client: Client) -> Device:
        """StartDeviceAuthorization for `client` at the start URL."""
        data = self._post("/device_authorization", {"clientId": client.client_id,
                                                     "clientSecret": client.client_secret,
                                                     "startUrl": self.start_url})
        uri = _text(data, "verificationUri")
        return Device(_text(data, "deviceCode"), _text(data, "userCode"), uri,
                      str(data.get("verificationUriComplete") or uri), float(data.get("expiresIn") or 600),
                      float(data.get("interval") or 5))

    def poll(self, client: Client, device: Device,
             on_wait: Callable[[str, float], None] | None = None) -> dict[str, Any]:
        """CreateToken until approved; the token answer, or LoginError (expired, denied, refused).

        `on_wait(reason, interval)` is told of each pending or slow_down answer.
        """
        interval, deadline = device.interval, self._clock() + device.expires_in
        while True:
            self._sleep(interval)
            answer = self.poll_once(client, device)
            if isinstance(answer, dict):
                return answer
            if answer == "slow_down":
                interval += SLOW_DOWN_STEP
            if on_wait:
                on_wait(answer or "authorization_pending", interval)
            if self._clock() + interval > deadline:
                raise LoginError(_MESSAGES["expired_token"])

    def poll_once(self, client: Client, device: Device) -> dict[str, Any] | str | None:
        """One CreateToken call: the token answer, None (still pending), "slow_down", or LoginError."""
        body = {"clientId": client.client_id, "clientSecret": client.client_secret, "grantType": DEVICE_GRANT,
                "deviceCode": device.device_code}
        response = self._send("/token", body)
        if response.status_code == 200:
            return _json(response)
        error = _error(response)
        if error == "authorization_pending":
            return None
        if error == "slow_down":
            return error
        raise LoginError(_MESSAGES.get(error, f"the login service answered {response.status_code} "
                                              f"({error or 'no error code'})"))

    def entry(self, client: Client, token: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """The account entry (accounts-file fields) of a finished login."""
        now = now or datetime.now(timezone.utc)
        expires = now + timedelta(seconds=float(token.get("expiresIn") or 3600))
        return {"accessToken": _text(token, "accessToken"), "refreshToken": _text(token, "refreshToken"),
                "expiresAt": format_expiry(expires), "authMethod": "IdC", "region": self.region,
                "clientId": client.client_id, "clientSecret": client.client_secret, "startUrl": self.start_url}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._send(path, body)
        if response.status_code != 200:
            error = _error(response)
            raise LoginError(_MESSAGES.get(error, f"{path} answered {response.status_code} ({error or 'no code'})"))
        return _json(response)

    def _send(self, path: str, body: dict[str, Any]) -> requests.Response:
        try:
            return self.session.post(self.url + path, json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise LoginError(f"cannot reach {self.url} ({type(exc).__name__}); check the network and --region") \
                from None


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise LoginError(f"the login service answered {response.status_code} with something not JSON") from None
    if not isinstance(data, dict):
        raise LoginError("the login service answered with something not a JSON object")
    return data


def _error(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("error") or "") if isinstance(data, dict) else ""


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise LoginError(f"the login service's answer lacks {key}")
    return value
