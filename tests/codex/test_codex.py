"""The real Codex CLI (`@openai/codex`, pinned in tests/codex/package-lock.json) against ki2api behind the fake Kiro.

`codex exec` runs non-interactively with ki2api as a custom provider (wire_api = "responses") in a temporary
CODEX_HOME: a plain task; a task whose scripted answer calls Codex's shell tool, which Codex runs and whose
output goes back to the model; a web search the model makes (Codex's `web_search` tool, run by ki2api on the
fake's POST /mcp); and a session long enough for Codex to compact it (through /v1/responses). Codex's update check and analytics are off, and every proxy variable points at
a loopback recorder (NO_PROXY only for 127.0.0.1): any attempt to reach beyond loopback would show there.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers.ci import missing
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CODEX = HERE / "node_modules" / ".bin" / "codex"
MODEL = "claude-sonnet-4-5"
CONFIG = """model = "{model}"
model_provider = "ki2api"
check_for_update_on_startup = false
{extra}
[model_providers.ki2api]
name = "ki2api"
base_url = "{url}/v1"
env_key = "KI2API_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false
tool_suggest = false
in_app_updates = false
"""


class Recorder:
    """A loopback TCP listener that notes every connection (what a proxy would be asked for) and closes it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(512))
                except OSError:
                    self.seen.append(b"")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def codex(tmp_path, gateway):
    """Run `codex exec PROMPT` in a fresh workspace; returns (completed process, workspace)."""
    if not os.access(CODEX, os.X_OK) or shutil.which("node") is None:
        missing("the Codex CLI test needs node and `npm ci --prefix tests/codex` (make test installs them)")
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    recorder = Recorder()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home), "KI2API_API_KEY": KEY,
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = recorder.url

    def run(prompt: str, extra_config: str = "") -> subprocess.CompletedProcess:
        (home / "config.toml").write_text(CONFIG.format(model=MODEL, url=gateway.url, extra=extra_config))
        done = subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access",
                               "-C", str(work), prompt], env=env, cwd=work, capture_output=True, text=True,
                              timeout=180, stdin=subprocess.DEVNULL)
        assert recorder.seen == [], f"Codex tried to reach beyond loopback: {recorder.seen}"
        return done

    yield run, work
    recorder.close()


def kiro_calls(fake_upstream):
    return [r["body"]["conversationState"] for r in fake_upstream.requests()]


def test_codex_exec_plain_task(codex, fake_upstream):
    run, _work = codex
    fake_upstream.script({"texts": ["Hello from", " ki2api."]})
    done = run("Say hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Hello from ki2api.")
    [call] = kiro_calls(fake_upstream)
    current = call["currentMessage"]["userInputMessage"]
    assert current["content"].endswith("Say hello")
    names = {t["toolSpecification"]["name"] for t in current["userInputMessageContext"]["tools"]}
    assert "exec_command" in names  # Codex's shell tool reached Kiro as a tool


def test_codex_runs_the_shell_tool_kiro_asked_for_and_reports_back(codex, fake_upstream):
    run, work = codex
    command = json.dumps({"cmd": "echo ki2api-tool-ok > proof.txt && cat proof.txt"})
    tool = [{"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": "tooluse_shell1"}},
            {"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": "tooluse_shell1",
                                                   "input": command}},
            {"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": "tooluse_shell1",
                                                   "stop": True}}]
    fake_upstream.script({"events": tool}, {"texts": ["The file says ki2api-tool-ok."]})
    done = run("Write proof.txt and tell me what it says")
    assert done.returncode == 0, done.stderr
    assert (work / "proof.txt").read_text().strip() == "ki2api-tool-ok"
    assert done.stdout.strip().endswith("The file says ki2api-tool-ok.")
    first, second = kiro_calls(fake_upstream)
    results = second["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert [r["toolUseId"] for r in results] == ["tooluse_shell1"]
    assert "ki2api-tool-ok" in results[0]["content"][0]["text"]
    uses = second["history"][-1]["assistantResponseMessage"]["toolUses"]
    assert uses[0]["name"] == "exec_command" and uses[0]["input"]["cmd"].startswith("echo ki2api-tool-ok")


def shell_call(tool_id: str, cmd: str) -> list[dict]:
    return [{"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": tool_id}},
            {"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": tool_id,
                                                   "input": json.dumps({"cmd": cmd})}},
            {"event": "toolUseEvent", "payload": {"name": "exec_command", "toolUseId": tool_id, "stop": True}}]


def test_codex_web_search_runs_on_kiros_search(codex, fake_upstream):
    run, _work = codex
    raw = json.dumps({"query": "kiro gateway"})
    search = [{"event": "toolUseEvent", "payload": {"name": "web_search", "toolUseId": "tooluse_ws1", "input": raw,
                                                     "stop": True}}]
    fake_upstream.script_search({"results": [{"title": "Kiro gateway docs", "url": "https://example.com/kiro-gw",
                                              "snippet": "How to run a Kiro gateway."}]})
    fake_upstream.script({"events": search}, {"texts": ["See https://example.com/kiro-gw for the gateway."]})
    done = run("Search the web for kiro gateway", 'web_search = "live"')
    assert done.returncode == 0, done.stderr
    assert "web search: kiro gateway" in done.stderr  # Codex shows the web_search_call item ki2api sent
    assert done.stdout.strip().endswith("See https://example.com/kiro-gw for the gateway.")
    (searched,) = fake_upstream.searches()
    assert searched["body"]["params"]["arguments"] == {"query": "kiro gateway"}
    first, second = kiro_calls(fake_upstream)  # one Codex turn, two Kiro calls: the search ran in between
    (result,) = second["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert result["toolUseId"] == "tooluse_ws1" and "How to run a Kiro gateway." in result["content"][0]["text"]


def test_codex_compacts_a_long_session_through_responses_and_goes_on(codex, fake_upstream):
    run, _work = codex
    fake_upstream.script({"events": shell_call("tooluse_c1", "echo compact-me")},
                         {"texts": ["Summary: ran echo compact-me, it printed compact-me."]},
                         {"texts": ["Finished after compaction."]})
    done = run("Run echo compact-me", extra_config="model_auto_compact_token_limit = 1000\n")
    assert done.returncode == 0, done.stderr
    assert "context compacted" in done.stderr
    assert done.stdout.strip().endswith("Finished after compaction.")
    _first, summarise, resume = kiro_calls(fake_upstream)
    # Codex's own summarising turn, sent with the tool's output, then a fresh history holding the summary.
    summarising = summarise["currentMessage"]["userInputMessage"]
    assert "compact-me" in summarising["userInputMessageContext"]["toolResults"][0]["content"][0]["text"]
    assert resume["currentMessage"]["userInputMessage"]["content"].endswith(
        "Summary: ran echo compact-me, it printed compact-me.")
