"""The real Claude Code (`@anthropic-ai/claude-code`, pinned in tests/claude_code/package-lock.json) against
ki2api behind the fake Kiro.

`claude -p` (print mode) runs non-interactively with ANTHROPIC_BASE_URL at ki2api, in a temporary HOME: a web
search turn (Claude Code's WebSearch tool, answered by Kiro's search through the fake's POST /mcp), and a
`Write` whose call Kiro's answer cuts off, after which the model, told so, writes the file in two pieces;
auto-compaction at the right size on a 200k window and none past 200k on a 1M one; and Claude Code's effort
setting reaching Kiro as native reasoning fields.
Telemetry, error reporting, auto-update and all non-essential traffic are off by Claude Code's documented
variables, and every proxy variable points at a loopback recorder (NO_PROXY only for 127.0.0.1): any attempt
to reach beyond loopback fails the test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ki2api.translate.cut_calls import MARK
from tests.codex.test_codex import Recorder
from tests.helpers.ci import missing
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
CLAUDE = HERE / "node_modules" / ".bin" / "claude"
MODEL = "claude-sonnet-4-5"
QUIET = {"DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
         "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_BUG_COMMAND": "1",
         "DISABLE_NON_ESSENTIAL_MODEL_CALLS": "1", "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1"}


@pytest.fixture
def claude(tmp_path, gateway):
    """Run `claude -p PROMPT` in a fresh workspace; returns (run, workspace)."""
    if not os.access(CLAUDE, os.X_OK) or shutil.which("node") is None:
        missing("the Claude Code test needs `npm ci --prefix tests/claude_code` (make test installs it)")
    work = tmp_path / "work"
    work.mkdir()
    recorder = Recorder()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANTHROPIC_BASE_URL": gateway.url,
           "ANTHROPIC_AUTH_TOKEN": KEY, "ANTHROPIC_MODEL": MODEL, "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
           "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **QUIET}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = recorder.url

    def run(prompt: str, *tools: str, **extra_env: str) -> dict:
        model = extra_env.pop("model", MODEL)
        args = [str(CLAUDE), "-p", prompt, "--output-format", "json", "--model", model]
        if tools:
            args += ["--allowedTools", ",".join(tools)]
        done = subprocess.run(args, env={**env, **extra_env}, cwd=work, capture_output=True, text=True, timeout=240,
                              stdin=subprocess.DEVNULL)
        assert recorder.seen == [], f"Claude Code tried to reach beyond loopback: {recorder.seen}"
        assert done.returncode == 0, (done.stdout, done.stderr)
        return json.loads(done.stdout)

    yield run, work
    recorder.close()


def call(tool_id: str, name: str, args: dict) -> list[dict]:
    raw = json.dumps(args)
    return [{"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}},
            {"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "input": raw}},
            {"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id, "stop": True}}]


def kiro_calls(fake_upstream) -> list[dict]:
    return [r["body"]["conversationState"] for r in fake_upstream.requests()]


def results_of(state: dict) -> list[dict]:
    return state["currentMessage"]["userInputMessage"].get("userInputMessageContext", {}).get("toolResults", [])


def test_a_web_search_turn_runs_on_kiros_search(claude, fake_upstream):
    run, _work = claude
    fake_upstream.script_search({"results": [{"title": "Kiro gateway docs", "url": "https://example.com/kiro-gw",
                                              "snippet": "How to run a Kiro gateway."}]})
    fake_upstream.script({"events": call("tooluse_ws1", "WebSearch", {"query": "kiro gateway"})},
                         {"texts": ["Found it: [Kiro gateway docs](https://example.com/kiro-gw)."]})
    result = run("Search the web for kiro gateway", "WebSearch")
    assert result["is_error"] is False and result["result"].startswith("Found it")
    (search,) = fake_upstream.searches()
    assert search["status"] == 200 and search["body"]["params"]["arguments"] == {"query": "kiro gateway"}
    first, second = kiro_calls(fake_upstream)  # Claude Code's own search request never reached Kiro's chat
    (answer,) = results_of(second)
    assert answer["toolUseId"] == "tooluse_ws1" and answer["status"] == "success"
    text = answer["content"][0]["text"]
    assert "https://example.com/kiro-gw" in text and "How to run a Kiro gateway." in text


def test_a_cut_write_is_retried_in_two_pieces(claude, fake_upstream):
    run, work = claude
    target = work / "big.txt"
    part1, part2 = "first half\n" * 3, "second half\n" * 3
    whole = json.dumps({"file_path": str(target), "content": part1 + part2})
    cut = [{"event": "assistantResponseEvent", "payload": {"content": "Writing the file."}},
           {"event": "toolUseEvent", "payload": {"name": "Write", "toolUseId": "tooluse_cut"}},
           {"event": "toolUseEvent", "payload": {"name": "Write", "toolUseId": "tooluse_cut", "input": whole[:40]}}]
    fake_upstream.script({"events": cut},
                         {"events": call("tooluse_w1", "Write", {"file_path": str(target), "content": part1})},
                         {"events": call("tooluse_e1", "Edit", {"file_path": str(target), "old_string": part1,
                                                                "new_string": part1 + part2})},
                         {"texts": ["Written in two pieces."]})
    result = run("Write big.txt", "Write", "Edit")
    assert result["is_error"] is False and result["result"] == "Written in two pieces."
    assert target.read_text() == part1 + part2
    calls = kiro_calls(fake_upstream)
    assert len(calls) == 4
    told = calls[1]["history"][-1]["assistantResponseMessage"]
    assert MARK in told["content"] and "`Write`" in told["content"]  # the model reads why, and what to do
    assert not told.get("toolUses")  # the cut call never reached Claude Code, so never came back
    assert all(use["toolUseId"] != "tooluse_cut" for state in calls for turn in state.get("history", [])
               for use in turn.get("assistantResponseMessage", {}).get("toolUses", []))
    assert [r["toolUseId"] for r in results_of(calls[2])] == ["tooluse_w1"]
    assert [r["toolUseId"] for r in results_of(calls[3])] == ["tooluse_e1"]


def test_auto_compaction_fires_past_the_threshold_of_a_200k_window(claude, fake_upstream):
    """Kiro's context usage, as ki2api reports it, is what Claude Code compacts by: not at 70 % of 200k, at 95 %.

    Claude Code 2.1 leaves compaction to Anthropic's API unless CLAUDE_CODE_AUTO_COMPACT_WINDOW names the
    window (docs/claude-code.md): the setting a user of ki2api makes.
    """
    run, _work = claude
    steps = [{"events": call(f"tooluse_b{i}", "Bash", {"command": f"echo step{i}", "description": "echo"}),
              "context_usage": pct} for i, pct in enumerate((50.0, 70.0, 95.0))]
    fake_upstream.script(*steps, {"texts": ["<summary>Ran echo steps 0 to 2.</summary>"], "context_usage": 3.0},
                         {"texts": ["All steps done."], "context_usage": 4.0})
    result = run("Run the echo steps", "Bash", CLAUDE_CODE_AUTO_COMPACT_WINDOW="200000")
    assert result["is_error"] is False and result["result"] == "All steps done."
    calls = kiro_calls(fake_upstream)
    assert len(calls) == 5
    texts = [c["currentMessage"]["userInputMessage"]["content"] for c in calls]
    compacting = [i for i, text in enumerate(texts) if "summary" in text.lower() and "Do NOT call any tools" in text]
    assert compacting == [3]  # after the answer at 95 % (190k of 200k), not after 50 % or 70 %
    assert [r["toolUseId"] for r in results_of(calls[2])] == ["tooluse_b1"]  # 70 %: the loop simply went on
    assert "Ran echo steps 0 to 2." in json.dumps(calls[4])  # the conversation went on from the summary
    assert len(calls[4].get("history", [])) < len(calls[3].get("history", []))


def test_a_1m_model_is_not_compacted_past_200k(claude, fake_upstream):
    """claude-sonnet-4-6 has a 1M window at Kiro: named with `[1m]` and the window set, 250k and 600k go on."""
    run, _work = claude
    steps = [{"events": call(f"tooluse_m{i}", "Bash", {"command": f"echo m{i}", "description": "echo"}),
              "context_usage": pct} for i, pct in enumerate((25.0, 60.0))]
    fake_upstream.script(*steps, {"texts": ["Still going."], "context_usage": 61.0})
    result = run("Run the echo steps", "Bash", model="claude-sonnet-4-6[1m]",
                 CLAUDE_CODE_AUTO_COMPACT_WINDOW="1000000")
    assert result["is_error"] is False and result["result"] == "Still going."
    calls = kiro_calls(fake_upstream)
    assert len(calls) == 3 and all(c["currentMessage"]["userInputMessage"]["modelId"] == "claude-sonnet-4.6"
                                   for c in calls)
    assert not any("Do NOT call any tools" in c["currentMessage"]["userInputMessage"]["content"] for c in calls)
    assert result["modelUsage"]  # Claude Code counted the usage ki2api reported
    assert max(u["inputTokens"] for u in result["modelUsage"].values()) >= 600_000


@pytest.mark.parametrize("effort", ["low", "high"])
def test_claude_codes_effort_and_thinking_reach_kiro_natively(claude, fake_upstream, effort):
    run, _work = claude
    fake_upstream.set_default({"texts": ["Four."], "reasoning": ["2+2 is 4."]})
    result = run("What is 2+2?", model="claude-opus-4-7", CLAUDE_CODE_EFFORT_LEVEL=effort)
    assert result["is_error"] is False and result["result"] == "Four."
    (call,) = fake_upstream.requests()
    assert call["body"]["conversationState"]["currentMessage"]["userInputMessage"]["modelId"] == "claude-opus-4.7"
    fields = call["body"]["additionalModelRequestFields"]
    assert fields["thinking"]["type"] == "adaptive" and fields["output_config"] == {"effort": effort}
