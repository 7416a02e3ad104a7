"""The status page adds an account by the device flow and disables/enables one, in headless Chromium, against
the fake AWS SSO OIDC service (tests/fakes/oidc.py); every action needs the key and is logged without secrets."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest
import requests

from ki2api.cli import main
from tests.browser.test_dashboard import ARTIFACTS, HERE, browser_tools
from tests.fakes.oidc import FakeLogins
from tests.helpers.accounts import fake_accounts, write_token_dir
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration


def test_status_page_adds_an_account_by_the_device_flow_and_disables_one(start_gateway, fake_upstream, tmp_path,
                                                                         monkeypatch):
    node, chromium = browser_tools()
    state = tmp_path / "page-state"
    tokens = write_token_dir(tmp_path / "logins", "a")
    fake_upstream.reset(accounts=fake_accounts("a"))
    monkeypatch.setenv("KI2API_STATE_DIR", str(state))
    monkeypatch.setenv("KI2API_DOTENV", str(tmp_path / "none.env"))
    assert main(["import", str(tokens / "a.json"), "--name", "a"]) == 0
    with FakeLogins(interval=1, token_script=["authorization_pending"]) as oidc:
        gateway = start_gateway(KI2API_STATE_DIR=str(state), KIRO_OIDC_URL=f"{oidc.url}/token",
                                KIRO_TOKEN_FILE=str(tmp_path / "no-ide" / "kiro-auth-token.json"))
        # Without the key, no action.
        assert requests.post(f"{gateway.url}/dashboard/logins", json={}, timeout=10).status_code == 401
        assert requests.post(f"{gateway.url}/dashboard/accounts/a/disable", timeout=10).status_code == 401
        profile = tempfile.mkdtemp(prefix="ki2api-chromium-")
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            options = {"url": gateway.url, "key": KEY, "profile": profile, "chromium": chromium,
                       "screenshot": str(ARTIFACTS / "dashboard-login.png")}
            done = subprocess.run([node, str(HERE / "logins.mjs"), json.dumps(options)], cwd=HERE,
                                  capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert "error" not in seen, seen["error"]
        issued = oidc.issued[0]
        hidden = [issued["refreshToken"], issued["accessToken"], *oidc.device_codes,
                  *(client["secret"] for client in oidc.clients.values())]
        assert oidc.refused == []

    assert [row[0] for row in seen["before"]] == ["a"]
    assert seen["shown"]["code"] == "ABCD-EFGH"
    assert seen["shown"]["link"] == f"{oidc.url}/device?user_code=ABCD-EFGH"
    assert seen["status"] == "Account builder-id added."
    assert sorted(row[0] for row in seen["after"]) == ["a", "builder-id"]
    assert seen["disabled"] == {"state": "off", "message": "a: disabled"}
    assert seen["enabled"]["state"] == "ok"
    assert issued["refreshToken"] not in seen["bodyText"] and issued["accessToken"] not in seen["bodyText"]
    assert [m for m in seen["console"] if m["type"] in ("error", "warning")] == [] and seen["pageErrors"] == []
    log = gateway.log_text()
    assert "added account builder-id by a device-flow login" in log
    assert "disabled account a" in log and "enabled account a" in log
    for secret in hidden:
        assert secret not in log and secret not in seen["bodyText"]
