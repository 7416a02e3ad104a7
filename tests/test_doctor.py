"""`python -m ki2api doctor` against the fake Kiro on loopback: each check passing and failing, the exit status,
`--json`, and the text a person reads."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from ki2api.app import create_app
from ki2api.cli.doctor import diagnose
from ki2api.settings import Settings
from tests.fakes.kiro.process import REPO
from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file
from tests.helpers.gateway import free_port


@pytest.fixture
def env(fake_upstream, token_file, tmp_path, monkeypatch):
    """The environment a deployment would set, pointed at the fake Kiro, with no proxy in the way."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": fake_upstream.url,
            "KIRO_REFRESH_URL": fake_upstream.refresh_url, "KIRO_OIDC_URL": fake_upstream.oidc_url,
            "KI2API_STATE_DIR": str(tmp_path / "state"), "HOST": "127.0.0.1", "PORT": str(free_port()),
            "KIRO_USAGE_INTERVAL": "0", "KIRO_MODELS_INTERVAL": "0"}


def by_name(checks):
    return {check.label: check for check in checks}


def failures(checks):
    return [check.label for check in checks if not check.ok]


def test_every_check_passes_against_a_healthy_setup(env, fake_upstream):
    checks = diagnose(env)
    assert failures(checks) == []
    assert all(check.fix is None for check in checks)
    found = by_name(checks)
    assert found["token default"].detail.startswith(f"social login from {env['KIRO_TOKEN_FILE']}")
    assert found[f"network {fake_upstream.url}"].detail.startswith("direct, resolved to 127.0.0.1; it answered HTTP")
    assert "TLS" not in found[f"network {fake_upstream.url}"].detail  # plain http: no TLS to speak of
    assert found["models default"].ok and "claude" in found["models default"].detail
    assert found["credits default"].detail.startswith("41.32 of 50 credits left (KIRO FREE)")
    assert found["refresh default"].skipped and "--refresh" in found["refresh default"].detail
    assert found["chat default"].skipped
    assert found["shared_state files"].ok and found[f"port 127.0.0.1:{env['PORT']}"].detail.endswith("is free for "
                                                                                                      "ki2api")
    assert fake_upstream.stats()["refresh_calls"] == 0  # nothing due: the refresh token is not spent


def test_the_checks_come_in_the_documented_order(env):
    order = [check.check for check in diagnose(env)]
    first = {name: order.index(name) for name in dict.fromkeys(order)}
    assert list(first) == ["config", "token", "clock", "network", "refresh", "models", "credits", "chat",
                           "shared_state", "port"]


def test_command_line_text_and_exit_status(env, tmp_path):
    ok = _cli(env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0] == "✓ config: every setting parses"
    assert all(line[0] in "✓-" for line in lines[:-1]) and lines[-1].endswith("0 failed, 2 skipped")
    Path(env["KIRO_TOKEN_FILE"]).unlink()
    bad = _cli(env)
    assert bad.returncode == 1
    line = next(line for line in bad.stdout.splitlines() if line.startswith("✗ token default: "))
    assert line.startswith(f"✗ token default: cannot read the login in {env['KIRO_TOKEN_FILE']}")
    assert "; what to do: log in to Kiro IDE again" in line


def test_json_for_scripts(env):
    result = _cli(env, "--json", PORT="not-a-port")
    assert result.returncode == 1
    checks = json.loads(result.stdout)
    assert checks == [{"check": "config", "subject": None, "ok": False, "detail": checks[0]["detail"],
                       "fix": checks[0]["fix"], "skipped": False}]
    assert "PORT" in checks[0]["detail"]
    result = _cli(env, "--json")
    assert result.returncode == 0
    assert {c["check"] for c in json.loads(result.stdout)} >= {"config", "token", "clock", "network", "port"}


def test_ascii_marks_where_the_terminal_cannot_show_them(env):
    result = _cli(env, PYTHONIOENCODING="ascii")
    assert result.returncode == 0 and result.stdout.startswith("ok config: every setting parses")


def _cli(env, *args, **extra):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "KI2API_"))}
    environ.update(env, **extra, KI2API_DOTENV=os.devnull)
    return subprocess.run([sys.executable, "-m", "ki2api", "doctor", *args], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=60)


# -- configuration and token sources ---------------------------------------------------------------------------


def test_a_setting_that_does_not_parse_stops_there(env):
    checks = diagnose({**env, "UPSTREAM_CONNECT_TIMEOUT": "-1"})
    assert len(checks) == 1 and not checks[0].ok and "UPSTREAM_CONNECT_TIMEOUT" in checks[0].detail


def test_an_accounts_file_that_cannot_be_used_is_a_configuration_failure(env, tmp_path):
    accounts = tmp_path / "accounts.json"
    accounts.write_text('[{"name": "a"}]')
    checks = diagnose({**env, "KIRO_ACCOUNTS_FILE": str(accounts)})
    assert [c.check for c in checks] == ["config"] and not checks[0].ok
    assert "needs tokenFile or at least refreshToken" in checks[0].detail


def test_a_token_file_that_is_not_json(env, fake_upstream):
    Path(env["KIRO_TOKEN_FILE"]).write_text("{not json")
    found = by_name(diagnose(env))
    assert not found["token default"].ok and "not valid JSON" in found["token default"].detail
    assert all(found[f"{name} default"].skipped for name in ("refresh", "models", "credits", "chat"))
    assert fake_upstream.stats()["usage_calls"] == 0


def test_an_expired_access_token_without_a_refresh_token(env, tmp_path):
    path = tmp_path / "expired.json"
    path.write_text(json.dumps({"accessToken": ACCESS, "expiresAt": "2020-01-01T00:00:00.000Z"}))
    found = by_name(diagnose({**env, "KIRO_TOKEN_FILE": str(path)}))
    assert not found["token default"].ok and "no refresh token" in found["token default"].detail


def test_an_idc_login_without_its_client_registration(env, tmp_path):
    path = tmp_path / "idc.json"
    path.write_text(json.dumps({"accessToken": ACCESS, "refreshToken": REFRESH, "authMethod": "IdC",
                                "expiresAt": "2099-01-01T00:00:00.000Z"}))
    found = by_name(diagnose({**env, "KIRO_TOKEN_FILE": str(path)}))
    assert not found["token default"].ok and "client registration" in found["token default"].detail


# -- clock and network -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("skew, word", [(600, "behind"), (-900, "ahead of")])
def test_a_clock_that_is_off(env, fake_upstream, skew, word):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, clock_skew=skew)
    check = by_name(diagnose(env))["clock"]
    assert not check.ok and f"this clock is {abs(skew) // 60} min {word} Kiro's" in check.detail
    assert "NTP" in check.fix


def test_a_clock_within_a_minute_passes(env, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, clock_skew=20)
    check = by_name(diagnose(env))["clock"]
    assert check.ok and any(f"({seconds:+d} s)" in check.detail for seconds in (19, 20, 21))


def test_a_name_that_does_not_resolve(env):
    checks = diagnose({**env, "KIRO_REFRESH_URL": "http://kiro.nonexistent.invalid/refreshToken"})
    check = by_name(checks)["network http://kiro.nonexistent.invalid/refreshToken"]
    assert not check.ok and "kiro.nonexistent.invalid does not resolve" in check.detail and "DNS" in check.fix


def test_an_endpoint_nobody_listens_on(env):
    url = f"http://127.0.0.1:{free_port()}"
    found = by_name(diagnose({**env, "KIRO_API_BASE": url}))
    assert not found[f"network {url}"].ok and "cannot connect" in found[f"network {url}"].detail
    assert found["clock"].skipped  # nothing answered to compare with
    assert not found["models default"].ok and not found["credits default"].ok
    assert "network check" in found["models default"].fix


def test_tls_to_a_server_that_does_not_speak_it(env, fake_upstream):
    url = f"https://127.0.0.1:{fake_upstream.port}"
    check = by_name(diagnose({**env, "KIRO_API_BASE": url}))[f"network {url}"]
    assert not check.ok and check.detail.startswith("TLS failed") and "REQUESTS_CA_BUNDLE" in check.fix


def test_the_proxy_in_use_is_named_and_its_failure_reported(env, fake_upstream, monkeypatch):
    proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    check = by_name(diagnose(env))[f"network {fake_upstream.url}"]
    assert not check.ok and f"the proxy {proxy} failed" in check.detail and f"(via proxy {proxy})" in check.detail
    assert "NO_PROXY" in check.fix
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert by_name(diagnose(env))[f"network {fake_upstream.url}"].detail.startswith("direct")


# -- refresh, models, credits, chat ------------------------------------------------------------------------------


def test_a_login_that_is_due_is_refreshed_and_saved(env, fake_upstream):
    write_token_file(Path(env["KIRO_TOKEN_FILE"]), expires_in=60)  # inside the 300 s refresh margin
    check = by_name(diagnose(env))["refresh default"]
    assert check.ok and not check.skipped
    assert check.detail == "refreshed (it was due); the new token is saved, valid for 60 min"
    stats = fake_upstream.stats()
    assert stats["refresh_calls"] == 1
    assert json.loads(Path(env["KIRO_TOKEN_FILE"]).read_text())["refreshToken"] == stats["refresh_token"]


def test_refresh_on_request_spends_the_token_once(env, fake_upstream):
    found = by_name(diagnose(env, force_refresh=True))
    assert found["refresh default"].ok and not found["refresh default"].skipped
    stats = fake_upstream.stats()
    assert stats["refresh_calls"] == 1  # the models and credits calls used the new token, no second refresh
    assert json.loads(Path(env["KIRO_TOKEN_FILE"]).read_text())["refreshToken"] == stats["refresh_token"]
    assert found["models default"].ok and found["credits default"].ok


def test_a_refresh_token_kiro_rejects(env, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token="another")
    check = by_name(diagnose(env, force_refresh=True))["refresh default"]
    assert not check.ok and "no longer valid" in check.detail and "log in to Kiro IDE again" in check.fix


def test_a_refresh_endpoint_that_fails(env, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, refresh_status=503)
    check = by_name(diagnose(env, force_refresh=True))["refresh default"]
    assert not check.ok and "503" in check.detail and "try again later" in check.fix


def test_a_model_list_kiro_will_not_give(env, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, models_status=500)
    check = by_name(diagnose(env))["models default"]
    assert not check.ok and check.detail.startswith("ListAvailableModels failed: HTTP 500")


def test_an_account_without_credits(env, fake_upstream, tmp_path):
    usage = {"usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": 50.0,
                                     "currentUsageWithPrecision": 50.0}]}
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH,
                        accounts=[{"name": "spent", "access_tokens": ["spent-access"], "refresh_token": "spent-r",
                                   "usage": usage}])
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"name": "spent", "accessToken": "spent-access", "refreshToken": "spent-r",
                                     "expiresAt": "2099-01-01T00:00:00.000Z"}]))
    found = by_name(diagnose({**env, "KIRO_ACCOUNTS_FILE": str(accounts)}))
    assert not found["credits spent"].ok and found["credits spent"].detail.startswith("0 of 50 credits left")
    assert "another account" in found["credits spent"].fix
    assert found["token spent"].ok and f"from {accounts}" in found["token spent"].detail


def test_a_test_chat_on_request(env, fake_upstream):
    fake_upstream.script({"texts": ["OK"]})
    check = by_name(diagnose(env, chat=True))["chat default"]
    assert check.ok and not check.skipped and "answered 'OK'" in check.detail
    assert fake_upstream.stats()["chat_requests"] == 1


def test_a_test_chat_kiro_refuses(env, fake_upstream):
    fake_upstream.script({"status": 400, "json": {"message": "Improperly formed request.", "reason": None}})
    check = by_name(diagnose(env, chat=True))["chat default"]
    assert not check.ok and "HTTP 400" in check.detail and "Improperly formed" in check.detail
    assert "troubleshooting" in check.fix


# -- shared state and port -------------------------------------------------------------------------------------


def test_a_state_directory_that_cannot_be_written(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    found = by_name(diagnose({**env, "KI2API_STATE_DIR": str(blocker / "state")}))
    assert not found["shared_state files"].ok and "KI2API_STATE_DIR" in found["shared_state files"].fix


def test_redis_that_does_not_answer(env):
    url = f"redis://127.0.0.1:{free_port()}/0"
    check = by_name(diagnose({**env, "REDIS_URL": url}))["shared_state redis"]
    assert not check.ok and f"Redis at {url} does not answer" in check.detail and "REDIS_URL" in check.fix


def test_a_port_another_program_holds(env):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        check = by_name(diagnose({**env, "PORT": str(port)}))[f"port 127.0.0.1:{port}"]
    assert not check.ok and "another program holds" in check.detail and "PORT" in check.fix


def test_a_port_where_ki2api_already_answers(env):
    settings = Settings.from_env(env)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_port
        check = by_name(diagnose({**env, "PORT": str(port)}))[f"port 127.0.0.1:{port}"]
    finally:
        server.shutdown()
        thread.join(5)
    assert check.ok and check.detail.startswith(f"ki2api answers on 127.0.0.1:{port} (its /health says")


def test_a_port_that_cannot_be_listened_on(env):
    check = by_name(diagnose({**env, "HOST": "192.0.2.1"}))[f"port 192.0.2.1:{env['PORT']}"]
    assert not check.ok and "cannot listen" in check.detail


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy for GETs (the request line holds the absolute URL), counting what it forwards."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.path)
        with requests.Session() as session:
            session.trust_env = False
            answer = session.get(self.path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                                 timeout=5)
        body = answer.content
        self.send_response(answer.status_code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_working_proxy_is_named_and_used(env, fake_upstream, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    _ForwardProxy.seen = []
    try:
        found = by_name(diagnose(env))
    finally:
        monkeypatch.delenv("HTTP_PROXY")  # the fake's control calls after the test go direct
        server.shutdown()
        thread.join(5)
    check = found[f"network {fake_upstream.url}"]
    assert check.ok and check.detail.startswith(f"via proxy {proxy}, resolved to 127.0.0.1")
    assert f"{fake_upstream.url}/" in _ForwardProxy.seen
    assert found["models default"].ok  # the account's calls went through it too
    assert any(path.startswith(f"{fake_upstream.url}/ListAvailableModels") for path in _ForwardProxy.seen)


def test_an_account_switched_off_is_not_called(env, fake_upstream, tmp_path):
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([
        {"name": "on", "accessToken": ACCESS, "refreshToken": REFRESH, "expiresAt": "2099-01-01T00:00:00.000Z"},
        {"name": "off", "enabled": False, "accessToken": "x", "refreshToken": "y",
         "expiresAt": "2099-01-01T00:00:00.000Z"}]))
    found = by_name(diagnose({**env, "KIRO_ACCOUNTS_FILE": str(accounts)}, chat=True))
    assert found["token off"].ok and found["models on"].ok and found["chat on"].ok
    assert all(found[f"{name} off"].skipped and "disabled in the accounts file" in found[f"{name} off"].detail
               for name in ("refresh", "models", "credits"))
    assert found["chat off"].skipped
    assert fake_upstream.stats()["chat_requests"] == 1
