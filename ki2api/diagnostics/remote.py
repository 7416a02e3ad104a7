"""The checks that talk to Kiro: the network path to each endpoint (and the clock, from its Date header), each
account's refresh, model list and credits, and a test chat."""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.utils import select_proxy

from ..accounts.catalog import ModelCatalog
from ..accounts.credits import UsagePoller
from ..accounts.files import StoreError
from ..accounts.roster import Account
from ..errors import ApiError, AuthenticationError
from ..settings import Settings
from ..translate.openai_request import to_codewhisperer
from ..upstream.eventstream import EventStreamError
from ..upstream.events import TextDelta, UpstreamException, iter_events
from ..upstream.headers import chat_headers
from ..upstream.refusals import map_status
from .check import Check, failed, passed, skipped
from .local import MAX_SKEW, describe_left, describe_skew, relogin, skew

PROBE_READ_TIMEOUT = 10.0
CHAT_PROMPT = "Reply with the single word OK."


@dataclass(frozen=True)
class Probe:
    """What one GET of an endpoint found: the route (proxy or direct, resolved address) and the answer."""

    url: str
    proxy: str | None
    address: str | None = None
    status: int | None = None
    date: str | None = None
    at: float = 0.0  # when the answer's head arrived (the middle of the call), epoch seconds
    error: str | None = None
    fix: str | None = None


def probe(session: requests.Session, url: str, connect_timeout: float) -> Probe:
    """Resolve the host (the proxy's, if one is in use), then GET the URL: any HTTP answer means the path works."""
    proxies = session.merge_environment_settings(url, {}, None, None, None)["proxies"]
    proxy = select_proxy(url, proxies)
    parts = urlsplit(proxy if proxy and "://" in proxy else f"http://{proxy}" if proxy else url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as exc:
        return Probe(url, proxy, error=f"the name {host} does not resolve ({exc})",
                     fix="check the host name in the setting, this machine's DNS (/etc/resolv.conf), and whether "
                         "it may reach the internet" + (" (or the proxy's name)" if proxy else ""))
    started = time.time()
    try:
        response = session.get(url, timeout=(connect_timeout, PROBE_READ_TIMEOUT), allow_redirects=False, stream=True)
    except requests.RequestException as exc:
        error, fix = _transport(exc, proxy)
        return Probe(url, proxy, address, error=error, fix=fix)
    response.close()
    return Probe(url, proxy, address, response.status_code, response.headers.get("Date"), (started + time.time()) / 2)


def _transport(exc: requests.RequestException, proxy: str | None) -> tuple[str, str]:
    """What a failed GET says, and what to do."""
    if isinstance(exc, requests.exceptions.SSLError):
        return (f"TLS failed: {_reason(exc)}", "if a proxy or firewall inspects TLS, give its CA certificate to "
                "ki2api with REQUESTS_CA_BUNDLE=/path/to/ca.pem; else check this machine's clock and CA store")
    if isinstance(exc, requests.exceptions.ProxyError):
        return (f"the proxy {proxy} failed: {_reason(exc)}", "correct HTTPS_PROXY/HTTP_PROXY, or add the host "
                "to NO_PROXY if it must be reached directly")
    if isinstance(exc, requests.exceptions.Timeout):
        return ("no answer in time", "a firewall may drop the traffic: allow outgoing HTTPS to this host, or set "
                "HTTPS_PROXY if this network needs a proxy")
    return (f"cannot connect: {_reason(exc)}", "check that the URL is right and that this machine may reach it "
            "(firewall; HTTPS_PROXY if this network needs a proxy)")


def _reason(exc: Exception) -> str:
    """The innermost readable cause of a requests error, shortened."""
    text = str(exc.args[0] if exc.args else exc)
    return text[-200:] if len(text) > 200 else text


def network(found: Probe) -> Check:
    """The path to one endpoint: DNS, the proxy in use, TLS for https, an HTTP answer."""
    route = f"via proxy {found.proxy}" if found.proxy else "direct"
    if found.error:
        return failed("network", found.url, f"{found.error} ({route})", found.fix or "")
    tls = ", TLS ok" if found.url.startswith("https:") else ""
    return passed("network", found.url, f"{route}, resolved to {found.address}{tls}; it answered HTTP {found.status}")


def clock(found: Probe) -> Check:
    """This machine's clock against the Date header of Kiro's answer."""
    if found.error:
        return skipped("clock", None, f"not checked: {found.url} did not answer (see the network check)")
    offset = skew(found.date, found.at)
    if offset is None:
        return skipped("clock", None, f"not checked: {found.url} sent no readable Date header")
    if abs(offset) > MAX_SKEW:
        return failed("clock", None, f"{describe_skew(offset)} (Date header of {found.url})",
                      "set this machine's time right (enable NTP: timedatectl set-ntp true); token expiry is judged "
                      "by this clock")
    return passed("clock", None, f"within {MAX_SKEW:g} s of Kiro's ({offset:+.0f} s)")


def refresh(account: Account, settings: Settings, force: bool) -> Check:
    """The login refreshes, if it is due (or `force`): a rotating refresh token is never spent needlessly."""
    tokens = account.tokens
    try:
        credential = tokens.store.load().credential
    except (StoreError, OSError):  # the token check reports it
        return skipped("refresh", account.name, "not tried: the login cannot be read (see the token check)")
    if credential.refresh_token is None:
        return skipped("refresh", account.name, "not tried: this login has no refresh token")
    due = credential.expires_within(settings.refresh_margin)
    if not (due or force):
        return skipped("refresh", account.name, "not needed: the access token is still valid (--refresh tries it; "
                       "a rotating refresh token is then spent once and the new one saved)")
    try:
        fresh = tokens.refresh(credential) if force else tokens.current()
    except ApiError as exc:
        if isinstance(exc, AuthenticationError):
            return failed("refresh", account.name, exc.message, relogin(tokens.store.source))
        return failed("refresh", account.name, exc.message, "see the network check of the refresh endpoint; if "
                      "that passes, Kiro's token service is failing: try again later")
    if fresh.expires_within(0):
        return failed("refresh", account.name, "the refresh answered, but the token is still expired",
                      relogin(tokens.store.source))
    left = f", valid for {describe_left(fresh.expires_at)}" if fresh.expires_at else ""
    return passed("refresh", account.name, "refreshed" + (" (it was due)" if due else "") + f"; the new token is "
                  f"saved{left}")


def models(account: Account, catalog: ModelCatalog) -> tuple[Check, list[str]]:
    """The account's ListAvailableModels answer, and the model ids in it."""
    entries, error = catalog.fetch(account)
    if entries is None:
        return failed("models", account.name, f"ListAvailableModels failed: {error}", _api_fix(error)), []
    ids = [e["modelId"] for e in entries if isinstance(e.get("modelId"), str)]
    if not ids:
        return failed("models", account.name, "Kiro lists no model for this account",
                      "check the account's subscription in Kiro; another account may serve meanwhile"), []
    return passed("models", account.name, f"{len(ids)} models: {', '.join(ids)}"), ids


def credits(account: Account, poller: UsagePoller) -> Check:
    """The account's getUsageLimits answer: credits left, and when they reset."""
    usage, error = poller.fetch_or_why(account)
    if usage is None:
        return failed("credits", account.name, f"getUsageLimits failed: {error}", _api_fix(error))
    plan = f" ({usage['subscription']})" if usage.get("subscription") else ""
    reset = f", reset {usage['next_reset']}" if usage.get("next_reset") else ""
    line = f"{usage['remaining']:g} of {usage['limit']:g} credits left{plan}{reset}"
    if usage["limit"] and usage["remaining"] <= 0:
        return failed("credits", account.name, line, "wait for the reset, upgrade the plan, or add another account")
    return passed("credits", account.name, line)


def _api_fix(error: str | None) -> str:
    text = error or ""
    if "HTTP 401" in text or "HTTP 403" in text or "log in" in text:
        return "Kiro refused the login: see the token and refresh checks (doctor --refresh)"
    if "unreachable" in text or "Could not reach" in text:
        return "see the network check of KIRO_API_BASE"
    return "see the message; if it persists, the service may be failing: try again later"


def chat(account: Account, settings: Settings, session: requests.Session, model_ids: list[str]) -> Check:
    """A one-word test chat on this account (costs a little of its credits)."""
    model = model_ids[0] if model_ids else None
    if model is None:
        return skipped("chat", account.name, "not tried: the account lists no model (see the models check)")
    try:
        credential = account.tokens.current()
        payload = to_codewhisperer({"model": model, "messages": [{"role": "user", "content": CHAT_PROMPT}]}, model)
        arn = settings.profile_arn or credential.profile_arn
        body = json.dumps({**payload, "profileArn": arn} if arn else payload).encode()
        headers = chat_headers(credential, settings.client_version, account.tokens.machine_id())
        started = time.monotonic()
        response = session.post(f"{settings.api_base}/generateAssistantResponse", data=body, headers=headers,
                                timeout=(settings.connect_timeout, settings.read_timeout), stream=True)
    except ApiError as exc:
        return failed("chat", account.name, exc.message, _api_fix(exc.message))
    except requests.RequestException as exc:
        return failed("chat", account.name, f"cannot reach Kiro: {_reason(exc)}", _api_fix("unreachable"))
    try:
        if response.status_code != 200:
            error = map_status(response)
            return failed("chat", account.name, f"HTTP {response.status_code}: {error.message}",
                          _chat_fix(error.message))
        text = "".join(e.text for e in iter_events(response.iter_content(chunk_size=None)) if isinstance(e, TextDelta))
    except (ApiError, EventStreamError, UpstreamException, requests.RequestException) as exc:
        return failed("chat", account.name, f"the answer broke off: {exc}", _api_fix(str(exc)))
    finally:
        response.close()
    elapsed = (time.monotonic() - started) * 1000
    return passed("chat", account.name, f"{model} answered {text.strip()[:40]!r} in {elapsed:.0f} ms")


def _chat_fix(message: str) -> str:
    if "Improperly formed" in message:
        return ("Kiro refused the request's shape: report it with the log line; for clients, see the "
                "troubleshooting page (Improperly formed request)")
    return _api_fix(message)
