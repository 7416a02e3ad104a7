"""Kiro's own sign-in for Google and GitHub logins: PKCE (S256) with a loopback redirect.

The person's browser opens `<auth>/login?idp=Google|Github&redirect_uri=http://127.0.0.1:<port>/oauth/callback
&code_challenge=...&code_challenge_method=S256&state=...&prompt=select_account`; Kiro redirects back with `code`
and `state`; ki2api posts {code, code_verifier, redirect_uri} to `<auth>/oauth/token` and gets the same answer
as a social refresh (accessToken, refreshToken, profileArn, expiresIn). The redirect reaches 127.0.0.1 of the
machine running the login, so the browser must run there (or reach it through an SSH tunnel).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import requests

from .credential import format_expiry
from .oidc import LoginError

AUTH_URL = "https://prod.us-east-1.auth.desktop.kiro.dev"
PROVIDERS = {"google": "Google", "github": "Github"}
CALLBACK_PATH = "/oauth/callback"
TIMEOUT = 30.0


def pkce_pair() -> tuple[str, str]:
    """A fresh code verifier and its S256 challenge (RFC 7636), both base64url without padding."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        if url.path != CALLBACK_PATH:
            self.send_error(404)
            return
        self.server.query = {k: v[0] for k, v in parse_qs(url.query).items()}  # type: ignore[attr-defined]
        body = b"<!doctype html><title>ki2api</title><p>Kiro login received; you may close this tab.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.done.set()  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never log it
        pass


class SocialLogin:
    """One Google or GitHub login through Kiro's sign-in, its redirect caught on a loopback port."""

    def __init__(self, session: requests.Session, provider: str, url: str = AUTH_URL) -> None:
        if provider.lower() not in PROVIDERS:
            raise LoginError(f"social logins are {', '.join(PROVIDERS)} (got {provider!r})")
        self.session = session
        self.provider = PROVIDERS[provider.lower()]
        self.url = url.rstrip("/")
        self.verifier, self.challenge = pkce_pair()
        self.state = secrets.token_urlsafe(16)
        self._server = HTTPServer(("127.0.0.1", 0), _Callback)
        self._server.done = threading.Event()  # type: ignore[attr-defined]
        self._server.query = {}  # type: ignore[attr-defined]
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_port}{CALLBACK_PATH}"

    def authorize_url(self) -> str:
        """The address to open in the browser."""
        query = {"idp": self.provider, "redirect_uri": self.redirect_uri, "code_challenge": self.challenge,
                 "code_challenge_method": "S256", "state": self.state, "prompt": "select_account"}
        return f"{self.url}/login?{urlencode(query)}"

    def wait(self, timeout: float) -> str:
        """The authorization code, once the browser comes back; LoginError on timeout, refusal or a bad state."""
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        try:
            if not self._server.done.wait(timeout):  # type: ignore[attr-defined]
                raise LoginError(f"no answer from the browser within {timeout:.0f} s; run the login again")
        finally:
            self._server.shutdown()
            self._server.server_close()
        query: dict[str, str] = self._server.query  # type: ignore[attr-defined]
        if query.get("error"):
            raise LoginError(f"the sign-in was refused ({query['error'][:80]}); run the login again")
        if not secrets.compare_digest(query.get("state", ""), self.state):
            raise LoginError("the sign-in came back with the wrong state; run the login again")
        if not query.get("code"):
            raise LoginError("the sign-in came back without a code")
        return query["code"]

    def exchange(self, code: str, now: datetime | None = None) -> dict[str, Any]:
        """POST /oauth/token: the account entry of the finished login."""
        body = {"code": code, "code_verifier": self.verifier, "redirect_uri": self.redirect_uri}
        try:
            response = self.session.post(f"{self.url}/oauth/token", json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise LoginError(f"cannot reach {self.url} ({type(exc).__name__})") from None
        try:
            data = response.json() if response.status_code == 200 else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict) or not data.get("accessToken") or not data.get("refreshToken"):
            raise LoginError(f"Kiro's sign-in refused the code ({response.status_code}); run the login again")
        expires = (now or datetime.now(timezone.utc)) + timedelta(seconds=float(data.get("expiresIn") or 3600))
        entry = {"accessToken": data["accessToken"], "refreshToken": data["refreshToken"],
                 "expiresAt": format_expiry(expires), "authMethod": "social", "provider": self.provider}
        if isinstance(data.get("profileArn"), str):
            entry["profileArn"] = data["profileArn"]
        return entry

    def close(self) -> None:
        """Free the loopback port if the login was abandoned before wait()."""
        self._server.server_close()
