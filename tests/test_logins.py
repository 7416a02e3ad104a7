"""Logins without the IDE: the OIDC device flow and the social sign-in against the loopback fakes
(tests/fakes/oidc.py), then `python -m ki2api login` storing the account."""
from __future__ import annotations

import json
import stat
import threading

import pytest
import requests
import segno

from ki2api.accounts import oidc, social
from ki2api.accounts.oidc import DeviceFlow, LoginError
from ki2api.accounts.store import AccountStore
from ki2api.cli import main
from tests.fakes.oidc import FakeLogins


class Clock:
    """A clock that only moves when the flow sleeps: the sleeps are the polling intervals."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def flow(fake: FakeLogins, clock: Clock) -> DeviceFlow:
    return DeviceFlow(requests.Session(), url=fake.url, sleep=clock.sleep, clock=clock)


def test_device_flow_polls_at_the_interval_backs_off_on_slow_down_and_returns_the_tokens():
    clock = Clock()
    with FakeLogins(interval=2, token_script=["authorization_pending", "slow_down", "authorization_pending"]) as fake:
        login = flow(fake, clock)
        client = login.register()
        device = login.start(client)
        assert device.user_code == "ABCD-EFGH" and device.verification_uri_complete.endswith("user_code=ABCD-EFGH")
        waits = []
        token = login.poll(client, device, on_wait=lambda reason, interval: waits.append((reason, interval)))
        entry = login.entry(client, token)
    assert clock.sleeps == [2, 2, 7, 7]  # slow_down adds 5 s, and the slower pace stays
    assert waits == [("authorization_pending", 2), ("slow_down", 7), ("authorization_pending", 7)]
    assert entry["refreshToken"] == fake.issued[0]["refreshToken"] and entry["authMethod"] == "IdC"
    assert entry["clientId"] == client.client_id and entry["startUrl"] == oidc.BUILDER_ID_START_URL
    assert fake.refused == []


@pytest.mark.parametrize("error, words", [("expired_token", "expired"), ("access_denied", "refused")])
def test_device_flow_stops_with_a_clear_message(error, words):
    with FakeLogins(token_script=["authorization_pending", error]) as fake:
        login = flow(fake, Clock())
        client = login.register()
        with pytest.raises(LoginError, match=words) as caught:
            login.poll(client, login.start(client))
    assert "run the login again" in str(caught.value) and "secret" not in str(caught.value)


def test_device_flow_gives_up_when_the_code_expires_while_pending():
    with FakeLogins(interval=5, token_script=["authorization_pending"] * 500) as fake:
        login = flow(fake, Clock())
        client = login.register()
        with pytest.raises(LoginError, match="expired"):
            login.poll(client, login.start(client))
        assert len(fake.polls) <= 600 / 5


def test_the_fake_refreshes_a_device_login_once_and_refuses_a_spent_refresh_token():
    with FakeLogins() as fake:
        login = flow(fake, Clock())
        client = login.register()
        token = login.poll(client, login.start(client))
        body = {"clientId": client.client_id, "clientSecret": client.client_secret, "grantType": "refresh_token",
                "refreshToken": token["refreshToken"]}
        assert requests.post(f"{fake.url}/token", json=body, timeout=5).status_code == 200
        again = requests.post(f"{fake.url}/token", json=body, timeout=5)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_social_login_uses_pkce_and_the_loopback_redirect():
    with FakeLogins() as fake:
        login = social.SocialLogin(requests.Session(), "github", url=fake.url)
        url = login.authorize_url()
        assert "code_challenge_method=S256" in url and "idp=Github" in url
        result: dict = {}
        waiter = threading.Thread(target=lambda: result.update(code=login.wait(10)))
        waiter.start()
        requests.get(url, timeout=5)  # the browser: Kiro's page redirects back to the loopback port
        waiter.join(10)
        entry = login.exchange(result["code"])
    assert entry["authMethod"] == "social" and entry["provider"] == "Github"
    assert entry["refreshToken"] == fake.issued[0]["refreshToken"] and entry["profileArn"].startswith("arn:")
    assert fake.refused == []


def test_social_login_refuses_a_redirect_with_the_wrong_state():
    login = social.SocialLogin(requests.Session(), "google")
    waiter_error: list[Exception] = []

    def wait() -> None:
        try:
            login.wait(10)
        except LoginError as exc:
            waiter_error.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    requests.get(f"{login.redirect_uri}?code=abc&state=forged", timeout=5)
    waiter.join(10)
    assert "wrong state" in str(waiter_error[0])


def test_login_command_stores_the_account_0600_and_prints_the_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.setattr(oidc.time, "sleep", lambda seconds: None)
    with FakeLogins(token_script=["authorization_pending"]) as fake:
        status = main(["login", "--no-browser", "--oidc-url", fake.url])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert "ABCD-EFGH" in out.out and f"{fake.url}/device?user_code=ABCD-EFGH" in out.out
    stored = AccountStore(tmp_path / "state").get("builder-id")
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.path.parent.stat().st_mode) == 0o700
    record = json.loads(stored.path.read_text())
    assert record["via"] == "login:builder-id" and record["client"]["secretExpiresAt"].endswith("Z")
    entry = record["accounts"][0]
    assert entry["refreshToken"] == fake.issued[0]["refreshToken"] and entry["clientSecret"].startswith("secret-")
    assert entry["region"] == "us-east-1" and entry["startUrl"] == oidc.BUILDER_ID_START_URL
    assert fake.issued[0]["refreshToken"] not in out.out + out.err  # never printed


def test_login_qr_code_draws_the_complete_address(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.setattr(oidc.time, "sleep", lambda seconds: None)
    with FakeLogins() as fake:
        status = main(["login", "--no-browser", "--qr", "--oidc-url", fake.url])
    out = capsys.readouterr().out
    assert status == 0
    drawn = [line for line in out.splitlines() if set(line.strip()) <= set("█▀▄ ") and line.strip()]
    assert len(drawn) >= 10  # the code's rows, two modules per line
    expected = segno.make(f"{fake.url}/device?user_code=ABCD-EFGH", error="m")
    assert len(drawn) >= expected.symbol_size(border=0)[1] // 2  # as tall as the address's own code


def test_login_command_says_why_it_failed_and_stores_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.setattr(oidc.time, "sleep", lambda seconds: None)
    with FakeLogins(token_script=["access_denied"]) as fake:
        status = main(["login", "--no-browser", "--start-url", "https://example.awsapps.com/start",
                       "--region", "eu-west-1", "--oidc-url", fake.url])
    assert status == 1
    assert "access denied" in capsys.readouterr().err
    assert AccountStore(tmp_path / "state").accounts() == []


def test_social_login_without_a_browser_offers_the_device_flow(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("ki2api.cli.login.SOCIAL_WAIT", 0.5)
    status = main(["login", "--social", "google"])
    err = capsys.readouterr().err
    assert status == 1
    assert "No browser on this machine" in err and "python -m ki2api login" in err


def test_status_page_logins_continue_from_any_process_and_leave_no_secret_behind(tmp_path, monkeypatch):
    from ki2api.accounts.pending import PendingLogins

    with FakeLogins(interval=1, token_script=["authorization_pending"]) as fake:
        started = PendingLogins(tmp_path).start(requests.Session(), "us-east-1", oidc.BUILDER_ID_START_URL, fake.url)
        path = tmp_path / "logins" / f"{started['id']}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "deviceCode" not in started
        other = PendingLogins(tmp_path)  # another worker
        assert other.poll(requests.Session(), started["id"])[0] == "pending"  # too early: no call made
        assert fake.polls == []
        clock = [0.0]
        monkeypatch.setattr("ki2api.accounts.pending.time.time", lambda: clock[0])
        clock[0] = json.loads(path.read_text())["next_poll"]
        assert other.poll(requests.Session(), started["id"])[0] == "pending"  # authorization_pending
        clock[0] += 1
        status, entry, _ = other.poll(requests.Session(), started["id"])
        assert status == "done" and entry["refreshToken"] == fake.issued[0]["refreshToken"]
        assert len(fake.polls) == 2 and not path.exists()
        abandoned = PendingLogins(tmp_path).start(requests.Session(), "us-east-1", oidc.BUILDER_ID_START_URL,
                                                  fake.url)
        clock[0] += 3600
        PendingLogins(tmp_path).sweep()
        assert not (tmp_path / "logins" / f"{abandoned['id']}.json").exists()


def test_login_command_with_google_through_a_browser_stores_a_social_account(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KI2API_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    opened: list[str] = []

    def browser(url: str) -> bool:  # the person's browser: Kiro's page, then the redirect to the loopback port
        opened.append(url)
        threading.Thread(target=requests.get, args=(url,), kwargs={"timeout": 10}).start()
        return True

    monkeypatch.setattr("ki2api.cli.login._browser", lambda: True)
    monkeypatch.setattr("ki2api.cli.login.webbrowser.open", browser)
    with FakeLogins() as fake:
        status = main(["login", "--social", "google", "--name", "me", "--auth-url", fake.url])
    out = capsys.readouterr()
    assert status == 0, out.err
    assert opened and opened[0].startswith(f"{fake.url}/login?idp=Google")
    entry = AccountStore(tmp_path / "state").get("me").entry
    assert entry["authMethod"] == "social" and entry["provider"] == "Google"
    assert entry["refreshToken"] == fake.issued[0]["refreshToken"] and fake.refused == []
    assert fake.issued[0]["refreshToken"] not in out.out + out.err


@pytest.mark.parametrize("body", [[None, None], "text", 42])
def test_status_page_login_refuses_a_body_that_is_not_an_object(client, auth, body):
    answer = client.post("/dashboard/logins", json=body, headers=auth)
    assert answer.status_code == 400
    assert "JSON object" in answer.get_json()["error"]
