"""The status page in a real headless Chromium (Debian's chromium, driven by playwright-core from npm).

The page loads and says "running" without a key; with the key it shows what /dashboard/data reports
(credential and expiry, requests and errors, models, client settings), renders without console errors,
and keeps the key in sessionStorage only. A screenshot is kept as artifacts/dashboard.png.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from ki2api.web.auth import key_label
from tests.helpers.credentials import KEY
from tests.helpers.ci import missing
from tests.helpers.gateway import REPO

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "artifacts"
AUTH = {"Authorization": f"Bearer {KEY}"}


def browser_tools() -> tuple[str, str]:
    """(node, chromium), or skip (fail under CI: tests/helpers/ci.py) naming what is missing."""
    node = shutil.which("node")
    absent = [what for what, ok in (("chromium (apt-get install chromium)", os.access(CHROMIUM, os.X_OK)),
                                    ("node", node is not None),
                                    ("playwright-core (npm ci --prefix tests/browser)",
                                     (HERE / "node_modules" / "playwright-core").is_dir())) if not ok]
    if absent:
        missing("status page browser test needs: " + ", ".join(absent) + " (make test installs them)")
    return node, CHROMIUM


def drive(node: str, chromium: str, url: str, screenshot: Path) -> dict:
    profile = tempfile.mkdtemp(prefix="ki2api-chromium-")
    try:
        options = {"url": url, "key": KEY, "wrongKey": "not-the-key", "screenshot": str(screenshot),
                   "profile": profile, "chromium": chromium}
        done = subprocess.run([node, str(HERE / "dashboard.mjs"), json.dumps(options)], cwd=HERE,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert "error" not in result, result["error"]
        return result
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_status_page_in_headless_chromium(start_gateway, fake_upstream):
    node, chromium = browser_tools()
    gw = start_gateway(KIRO_COOLDOWN_BASE="600", KIRO_COOLDOWN_MAX="600")  # the 429 below rests the account
    fake_upstream.script({"texts": ["Hello"]}, {"texts": ["Hi", " there"]},
                         {"status": 429, "json": {"message": "Too many requests"}})
    chat = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    calls = [requests.post(f"{gw.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30)
             for body in (chat, {**chat, "stream": True}, chat)]
    assert [c.status_code for c in calls] == [200, 200, 429]
    throttled = calls[-1]

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    seen = drive(node, chromium, gw.url, screenshot)
    data = requests.get(f"{gw.url}/dashboard/data", headers=AUTH, timeout=10).json()

    # Without the key: "running" and nothing more.
    before = seen["before"]
    assert before["state"] == "running" and before["detailsHidden"]
    account = data["accounts"][0]
    credential = account.get("credential", account)
    for detail in (credential["expires_at"], "claude-sonnet-4-5", "/v1/chat/completions"):
        assert detail not in before["visibleText"]

    # With the key: what the API reports.
    after = seen["after"]
    assert after["loginHidden"] and after["keyInput"] == ""
    [row] = after["accounts"]
    assert account["state"] == "cooling_down"  # throttled by the fake Kiro's 429, for 10 minutes
    assert row[0] == account["name"] and row[1] == "cooling down" and row[4] == credential["expires_at"]
    assert row[7] == f"{account['requests']} / {account['errors']}"
    assert credential["expires_at"] and credential["path"] in row[2]
    assert after["models"] == ", ".join(data["models"])
    routes = {r[0]: (int(r[1]), int(r[2])) for r in after["routes"]}
    assert routes["/v1/chat/completions"] == (3, 1)
    assert "rate_limit_exceeded 1" in after["counters"]
    assert throttled.headers["X-Request-Id"] in [r[1] for r in after["errors"]]
    # Only the API calls, newest first: not the page's own loads and polls of /, /static, /health, /dashboard/data.
    assert [r[1] for r in after["recent"]] == [c.headers["X-Request-Id"] for c in reversed(calls)]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", r[0]) for r in after["recent"] + after["errors"])
    recent = {r[1]: r for r in after["recent"]}
    for call, stream in zip(calls, ("no", "yes", "no")):
        shown = recent[call.headers["X-Request-Id"]]
        assert shown[2:6] == ["/v1/chat/completions", "claude-sonnet-4-5", stream, str(call.status_code)]
        assert shown[9] == ("0.01" if call.status_code == 200 else "")  # the fake Kiro's meteringEvent
    credits = {(r[0], r[1]): r[2] for r in after["credits"]}
    assert credits == {("account", account["name"]): "0.02", ("client key", key_label(KEY)): "0.02"}
    client = data["client"]
    assert after["cherry"] == ["OpenAI", client["api_root"], after["cherry"][2], client["default_model"]]
    assert client["api_root"] == gw.url
    ccr = json.loads(after["ccr"])
    assert ccr["Providers"][0]["api_base_url"] == f"{gw.url}/v1/chat/completions"
    assert ccr["Router"]["default"] == f"ki2api,{client['default_model']}"
    assert f'base_url="{gw.url}/v1"' in after["sdk"] and f'model="{client["default_model"]}"' in after["sdk"]
    assert KEY not in after["sdk"] + after["ccr"] + "".join(after["cherry"])  # masked until asked
    assert KEY in seen["revealed"]["sdk"] and json.loads(seen["revealed"]["ccr"])["Providers"][0]["api_key"] == KEY

    # The key: this tab's sessionStorage only; it survives a reload; a wrong one is refused and forgotten.
    assert after["sessionKey"] == KEY and after["localStorageSize"] == 0
    assert seen["afterReload"]["detailsVisible"]
    assert "refused" in seen["wrongKey"]["message"] and seen["wrongKey"]["detailsHidden"]
    assert seen["wrongKey"]["sessionKey"] is None

    # No console errors, no script errors, no failed loads on the normal path.
    assert [m for m in seen["console"]["main"] if m["type"] in ("error", "warning")] == []
    assert seen["pageErrors"] == [] and seen["failedRequests"] == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
