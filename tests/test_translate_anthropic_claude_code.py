"""A Claude Code session in Anthropic's format, replayed turn by turn: every Kiro request must be well formed.

Written by hand from the shapes Claude Code sends to /v1/messages: system text blocks with
cache_control, its tool set with draft-07 schemas plus an MCP tool whose name is too long for Kiro
and the server tool web_search, `<system-reminder>` text blocks, thinking blocks with signatures,
parallel tool calls, a rejected tool call (error result, then the interruption note), a tool result
carrying an image (the Read tool on a screenshot), a pasted image, and a partial answer followed by a
retried tool call (two assistant messages in a row).
"""
import pytest

from ki2api.translate.anthropic_request import parse_conversation, parse_options
from ki2api.translate.history import build_payload
from tests.helpers.claude_code import BODY, LONG_MCP, MESSAGES
from tests.helpers.kiro_request import assert_well_formed

USER_TURNS = [i for i, m in enumerate(MESSAGES) if m["role"] == "user"]


def kiro_body(messages):
    body = {**BODY, "messages": messages}
    conversation = parse_conversation(body, parse_options(body).thinking_budget)
    return build_payload(conversation, "claude-sonnet-4.5"), conversation


@pytest.mark.parametrize("upto", USER_TURNS)
def test_every_turn_of_the_session_is_a_well_formed_kiro_request(upto):
    payload, _ = kiro_body(MESSAGES[:upto + 1])
    assert_well_formed(payload)


def test_the_last_turn_keeps_everything_claude_code_sent():
    payload, conversation = kiro_body(MESSAGES)
    state = payload["conversationState"]
    history = [h.get("userInputMessage") or h.get("assistantResponseMessage") for h in state["history"]]
    assert history[0]["content"].startswith("<thinking_mode>enabled</thinking_mode>")
    assert "You are Claude Code" in history[0]["content"]
    assert history[3]["content"].startswith("<thinking>The tests fail; list them first.</thinking>\n\n")
    assert [u["toolUseId"] for u in history[3]["toolUses"]] == ["toolu_01", "toolu_02"]
    statuses = [(r["toolUseId"], r["status"]) for h in history for r in
                h.get("userInputMessageContext", {}).get("toolResults", [])]
    assert statuses == [("toolu_01", "success"), ("toolu_02", "error"), ("toolu_03", "error"),
                        ("toolu_04", "success")]
    assert sum(len(h.get("images", [])) for h in history) == 2  # the pasted one and the Read result's
    merged = history[-1]  # the partial answer and the retried call became one assistant turn
    assert merged["content"] == "The screenshot shows a failing assertion"
    upstream_long = conversation.names.upstream(LONG_MCP)
    assert [u["name"] for u in merged["toolUses"]] == [upstream_long, "TodoWrite"]
    current = state["currentMessage"]["userInputMessage"]
    declared = [t["toolSpecification"]["name"] for t in current["userInputMessageContext"]["tools"]]
    assert declared == ["Task", "Bash", "Glob", "Read", "TodoWrite", upstream_long]  # web_search dropped
    assert conversation.names.client(upstream_long) == LONG_MCP
