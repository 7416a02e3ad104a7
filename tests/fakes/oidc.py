"""A fake AWS SSO OIDC service and a fake Kiro social sign-in, on loopback, for the login tests.

OIDC: POST /client/register, /device_authorization and /token (the device-code grant and the refresh grant),
JSON bodies as the real service takes them; it refuses what the real one refuses (a missing field, an unknown
client or device code, a wrong grant) with the real error codes. `token_script` is the list of answers the
device-code polls get, in order (each "authorization_pending", "slow_down", "expired_token", "access_denied" or
"ok"); after the list, "ok". Poll times are recorded so tests can check the interval and the slow_down back-off.

Social: GET /login (Kiro's sign-in page: checks PKCE S256 and a loopback redirect, then redirects straight back
with a code, as after the person chose an account) and POST /oauth/token (checks the verifier).
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ERRORS = {"authorization_pending": 400, "slow_down": 400, "expired_token": 400, "access_denied": 400}


class FakeLogins:
    """Both fakes on one loopback port; `url` is the base for both."""

    def __init__(self, interval: int = 1, token_script: list[str] | None = None) -> None:
        self.interval = interval
        self.token_script = list(token_script or [])
        self.clients: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, dict[str, str]] = {}
        self.polls: list[float] = []
        self.calls: dict[str, int] = {}
        self.refused: list[str] = []
        self.issued: list[dict[str, Any]] = []
        self.device_codes: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    body = None
                status, answer = fake.post(urlparse(self.path).path, body)
                self._send(status, answer)

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                status, location = fake.login_page(url.path, {k: v[0] for k, v in parse_qs(url.query).items()})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "FakeLogins":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- OIDC ---------------------------------------------------------------------------------------------------

    def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """One POST: the status and JSON answer."""
        with self._lock:
            self.calls[path] = self.calls.get(path, 0) + 1
            if not isinstance(body, dict):
                return self._refuse("invalid_request", f"{path}: body is not a JSON object")
            handler = {"/client/register": self._register, "/device_authorization": self._authorize,
                       "/token": self._token, "/oauth/token": self._social_token}.get(path)
            return handler(body) if handler else (404, {"error": "not_found"})

    def _refuse(self, error: str, why: str, status: int = 400) -> tuple[int, dict[str, Any]]:
        self.refused.append(why)
        return status, {"error": error, "error_description": why}

    def _register(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("clientType") != "public" or not isinstance(body.get("clientName"), str):
            return self._refuse("invalid_request", "register: clientName and clientType public required")
        if DEVICE_GRANT not in (body.get("grantTypes") or []) or not body.get("scopes"):
            return self._refuse("invalid_request", "register: the device grant and scopes required")
        client_id, secret = f"client-{secrets.token_hex(4)}", f"secret-{secrets.token_hex(8)}"
        self.clients[client_id] = {"secret": secret, "grants": body["grantTypes"]}
        return 200, {"clientId": client_id, "clientSecret": secret, "clientIdIssuedAt": int(time.time()),
                     "clientSecretExpiresAt": int(time.time()) + 90 * 86400}

    def _client_ok(self, body: dict[str, Any]) -> bool:
        client = self.clients.get(body.get("clientId"))
        return client is not None and client["secret"] == body.get("clientSecret")

    def _authorize(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(body):
            return self._refuse("invalid_client", "device_authorization: unknown client", 401)
        if not str(body.get("startUrl", "")).startswith("https://"):
            return self._refuse("invalid_request", "device_authorization: startUrl required")
        code, user_code = f"device-{secrets.token_hex(8)}", "ABCD-EFGH"
        self.devices[code] = {"client": body["clientId"], "script": list(self.token_script)}
        self.device_codes.append(code)
        uri = f"{self.url}/device"
        return 200, {"deviceCode": code, "userCode": user_code, "verificationUri": uri,
                     "verificationUriComplete": f"{uri}?user_code={user_code}", "expiresIn": 600,
                     "interval": self.interval}

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(body):
            return self._refuse("invalid_client", "token: unknown client", 401)
        if body.get("grantType") == "refresh_token":
            if body.get("refreshToken") not in self.refresh_tokens:
                return self._refuse("invalid_grant", "token: unknown refresh token")
            self.refresh_tokens.discard(body["refreshToken"])
            return 200, self._issue()
        if body.get("grantType") != DEVICE_GRANT:
            return self._refuse("unsupported_grant_type", f"token: grantType {body.get('grantType')!r}")
        device = self.devices.get(body.get("deviceCode"))
        if device is None or device["client"] != body["clientId"]:
            return self._refuse("invalid_grant", "token: unknown device code")
        self.polls.append(time.monotonic())
        step = device["script"].pop(0) if device["script"] else "ok"
        if step != "ok":
            return ERRORS[step], {"error": step, "error_description": step}
        del self.devices[body["deviceCode"]]
        return 200, self._issue()

    def _issue(self) -> dict[str, Any]:
        tokens = {"accessToken": f"aoaAAAAAfake-{secrets.token_hex(8)}",
                  "refreshToken": f"aorAAAAAfake-{secrets.token_hex(8)}", "expiresIn": 3600, "tokenType": "Bearer"}
        self.refresh_tokens.add(tokens["refreshToken"])
        self.issued.append(tokens)
        return tokens

    # -- social -------------------------------------------------------------------------------------------------

    def login_page(self, path: str, query: dict[str, str]) -> tuple[int, str | None]:
        """GET /login: checks the request, then redirects back with a code (the person chose an account)."""
        if path != "/login":
            return 404, None
        redirect = query.get("redirect_uri", "")
        if (query.get("idp") not in ("Google", "Github") or query.get("code_challenge_method") != "S256"
                or len(query.get("code_challenge", "")) != 43 or not redirect.startswith("http://127.0.0.1:")
                or not query.get("state")):
            self.refused.append(f"login: malformed {sorted(query)}")
            return 400, None
        code = f"code-{secrets.token_hex(8)}"
        self.codes[code] = {"challenge": query["code_challenge"], "redirect_uri": redirect}
        return 302, f"{redirect}?{urlencode({'code': code, 'state': query['state']})}"

    def _social_token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        grant = self.codes.pop(str(body.get("code")), None)
        verifier = str(body.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != body.get("redirect_uri"):
            return self._refuse("invalid_grant", "oauth/token: wrong code, verifier or redirect_uri")
        tokens = self._issue()
        return 200, {**tokens, "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"}
