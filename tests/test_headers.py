"""The headers ki2api sends to Kiro, as the fake Kiro received them on the wire, against the reference table below
(the Kiro IDE's headers, docs/protocol.md "How ki2api presents itself"): any drift fails."""
from __future__ import annotations

import json
import platform
import re
from dataclasses import replace

import pytest

from ki2api.app import create_app
from ki2api.upstream import headers as kiro
from tests.helpers.credentials import ACCESS, write_token_file
from tests.test_tokens import write_idc

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ANY = re.compile(r".+")
CHAT_UA = ("aws-sdk-js/1.0.34 ua/2.1 {os} lang/js md/nodejs#22.22.0 api/codewhispererstreaming#1.0.34 m/E "
           "KiroIDE-{version}-{machine}")
USAGE_UA = ("aws-sdk-js/1.0.0 ua/2.1 {os} lang/js md/nodejs#22.22.0 api/codewhispererruntime#1.0.0 m/N,E "
            "KiroIDE-{version}-{machine}")
IDC_UA = "aws-sdk-js/3.980.0 ua/2.1 {os} lang/js md/nodejs#22.22.0 api/sso-oidc#3.980.0 m/E KiroIDE"
# Added by the HTTP client itself: present, any value.
TRANSPORT = {"host": ANY, "content-length": ANY, "accept-encoding": ANY, "connection": ANY}
REFERENCE: dict[str, dict[str, str | re.Pattern[str]]] = {
    "chat": {"authorization": "Bearer {access}", "content-type": "application/json",
             "accept": "application/vnd.amazon.eventstream, application/json",
             "x-amzn-codewhisperer-optout": "true", "x-amzn-kiro-agent-mode": "vibe",
             "x-amz-user-agent": "aws-sdk-js/1.0.34 KiroIDE-{version}-{machine}", "user-agent": CHAT_UA,
             "amz-sdk-invocation-id": UUID, "amz-sdk-request": "attempt=1; max=3", **TRANSPORT},
    "usage": {"authorization": "Bearer {access}", "accept": "application/json",
              "x-amz-user-agent": "aws-sdk-js/1.0.0 KiroIDE-{version}-{machine}", "user-agent": USAGE_UA,
              "amz-sdk-invocation-id": UUID, "amz-sdk-request": "attempt=1; max=1",
              **{k: v for k, v in TRANSPORT.items() if k != "content-length"}},
    "social refresh": {"content-type": "application/json", "accept": "application/json, text/plain, */*",
                       "user-agent": "KiroIDE-{version}-{machine}", **TRANSPORT},
    "idc refresh": {"content-type": "application/json", "accept": "*/*",  # the HTTP client's default accept
                    "x-amz-user-agent": "aws-sdk-js/3.980.0 KiroIDE",
                    "user-agent": IDC_UA, "amz-sdk-invocation-id": UUID, "amz-sdk-request": "attempt=1; max=4",
                    **TRANSPORT},
}
VERSION = "0.11.107"
MACHINE = "5e1f" * 16
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}


def drift(kind: str, sent: dict[str, str], access: str = ACCESS) -> list[str]:
    """How `sent` differs from the reference for `kind`: missing, extra and wrong headers, one line each."""
    values = {"os": kiro.os_token(), "version": VERSION, "machine": MACHINE, "access": access}
    expected = REFERENCE[kind]
    found = [f"missing {name}" for name in expected if name not in sent]
    found += [f"unexpected {name}: {sent[name]}" for name in sent if name not in expected]
    for name, want in expected.items():
        if name not in sent:
            continue
        ok = want.fullmatch(sent[name]) if isinstance(want, re.Pattern) else sent[name] == want.format(**values)
        if not ok:
            shown = want.pattern if isinstance(want, re.Pattern) else want.format(**values)
            found.append(f"{name}: {sent[name]!r}, expected {shown!r}")
    return found


@pytest.fixture
def app_with_id(settings):
    return create_app(replace(settings, machine_id=MACHINE))


def test_the_os_token_is_nodes_platform_and_release():
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    assert kiro.os_token() == f"os/{system}#{platform.release()}"


def test_chat_headers_match_the_reference(app_with_id, fake_upstream, auth):
    assert app_with_id.test_client().post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    (record,) = fake_upstream.requests()
    assert drift("chat", record["headers"]) == []
    assert record["machine_id"] == MACHINE


def test_a_retry_after_a_token_refresh_counts_its_attempt(app_with_id, fake_upstream, token_file, auth):
    write_token_file(token_file, access="aoaAAAAAstale-but-unexpired")  # the fake refuses it: refresh, then retry
    assert app_with_id.test_client().post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    attempts = [r["headers"]["amz-sdk-request"] for r in fake_upstream.requests()]
    assert attempts == ["attempt=1; max=3", "attempt=2; max=3"]


def test_usage_headers_match_the_reference(app_with_id, fake_upstream):
    services = app_with_id.extensions["ki2api"]
    assert services.usage.fetch(services.pool.accounts[0]) is not None
    (call,) = [c for c in fake_upstream.calls() if c["path"] == "/getUsageLimits"]
    assert drift("usage", call["headers"]) == []


def test_social_refresh_headers_match_the_reference(app_with_id, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    app_with_id.extensions["ki2api"].pool.accounts[0].tokens.current()
    (call,) = fake_upstream.calls()
    assert call["path"] == "/refreshToken" and drift("social refresh", call["headers"]) == []


def test_idc_refresh_headers_match_the_reference(app_with_id, fake_upstream, token_file):
    write_idc(token_file)
    app_with_id.extensions["ki2api"].pool.accounts[0].tokens.current()
    (call,) = fake_upstream.calls()
    assert call["path"] == "/token" and drift("idc refresh", call["headers"]) == []
    assert MACHINE not in json.dumps(call["headers"])  # the IDE's OIDC client names no machine


def test_the_configured_version_is_used_everywhere(settings, fake_upstream, token_file, auth):
    write_token_file(token_file, expires_in=-60)
    app = create_app(replace(settings, client_version="0.12.5"))
    assert app.test_client().post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    services = app.extensions["ki2api"]
    services.usage.fetch(services.pool.accounts[0])
    sent = [r["headers"] for r in fake_upstream.requests()] + [c["headers"] for c in fake_upstream.calls()]
    agents = [h.get("user-agent", "") + " " + h.get("x-amz-user-agent", "") for h in sent]
    assert len(agents) == 3 and all("KiroIDE-0.12.5-" in a for a in agents)
    assert not any(VERSION in a for a in agents)
