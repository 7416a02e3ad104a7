"""A Claude Code session as Claude Code Router sends it (OpenAI format), replayed turn by turn.

Written by hand from the shapes CCR produces when it converts Claude Code's Anthropic requests
to OpenAI's: a system message made of text parts (with cache_control), Claude Code's tool set
with draft-07 schemas, `<system-reminder>` text parts, parallel tool calls, tool results followed by
user text, an image pasted as a data: URL, an interrupted tool call (error result, then a new user
message), a partial answer left before a retried tool call (two assistant messages in a row), and a
compacted history whose first tool result lost its call. Every request the fake Kiro receives must
be well formed (tests/helpers/kiro_request.py).
"""
import base64
import json

import pytest

from tests.helpers.kiro_request import assert_well_formed

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 60).decode()
DRAFT7 = "http://json-schema.org/draft-07/schema#"


def tool(name, description, properties, required=(), **extra):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": list(required), "additionalProperties": False,
        "$schema": DRAFT7, **extra}}}


TOOLS = [
    tool("Task", "Launch a new agent to handle complex, multi-step tasks autonomously. " * 200,
         {"description": {"type": "string"}, "prompt": {"type": "string"}, "subagent_type": {"type": "string"}},
         ["description", "prompt", "subagent_type"]),
    tool("Bash", "Executes a given bash command in a persistent shell session.",
         {"command": {"type": "string"}, "timeout": {"type": "number"}, "description": {"type": "string"},
          "run_in_background": {"type": "boolean"}}, ["command"]),
    tool("Glob", "Fast file pattern matching tool", {"pattern": {"type": "string"}, "path": {"type": "string"}},
         ["pattern"]),
    tool("Grep", "A powerful search tool built on ripgrep",
         {"pattern": {"type": "string"}, "path": {"type": "string"},
          "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
          "-n": {"type": "boolean"}, "-i": {"type": "boolean"}}, ["pattern"]),
    tool("Read", "Reads a file from the local filesystem.",
         {"file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}}, ["file_path"]),
    tool("Edit", "Performs exact string replacements in files.",
         {"file_path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"},
          "replace_all": {"type": "boolean", "default": False}}, ["file_path", "old_string", "new_string"]),
    tool("TodoWrite", "Create and manage a structured task list for your current coding session.",
         {"todos": {"type": "array", "items": {"type": "object", "properties": {
             "content": {"type": "string", "minLength": 1},
             "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
             "activeForm": {"type": "string"}}, "required": ["content", "status", "activeForm"],
             "additionalProperties": False}}}, ["todos"]),
    tool("WebFetch", "Fetches content from a specified URL", {"url": {"type": "string", "format": "uri"},
                                                               "prompt": {"type": "string"}}, ["url", "prompt"]),
    tool("mcp__ide__getDiagnostics", "Get language diagnostics from VS Code",
         {"uri": {"type": "string", "description": None}}),
    tool("mcp__plugin_context7_context7__resolve-library-id.v2", "Resolve a package name to a Context7 id "
         "(a name longer and odder than Kiro takes)", {"libraryName": {"type": "string"}}, ["libraryName"]),
]
SYSTEM = {"role": "system", "content": [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
     "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "You are an interactive CLI tool that helps users with software engineering tasks.\n"
                             "<env>\nWorking directory: /home/dev/app\nPlatform: linux\n</env>"}]}


def call(call_id, name, args):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def result(call_id, content, **extra):
    return {"role": "tool", "tool_call_id": call_id, "content": content, **extra}


CONVERSATION = [
    SYSTEM,
    # Compaction left a result whose call is gone, then the summary as user text.
    result("toolu_01LOSTCALL0000000000000", "old output"),
    {"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nThis session is being continued from a previous "
                                 "conversation.\n</system-reminder>"},
        {"type": "text", "text": "Fix the failing test in tests/test_app.py", "cache_control": {"type": "ephemeral"}}]},
    {"role": "assistant", "content": "I'll look at the test first.", "tool_calls": [
        call("toolu_01A", "TodoWrite", {"todos": [{"content": "Run tests", "status": "in_progress",
                                                   "activeForm": "Running tests"}]}),
        call("toolu_01B", "Bash", {"command": "pytest -q tests/test_app.py", "description": "Run the test"})]},
    result("toolu_01A", "Todos have been modified successfully."),
    result("toolu_01B", [{"type": "text", "text": "F\n1 failed in 0.12s"}]),
    {"role": "assistant", "content": "", "tool_calls": [
        call("toolu_01C", "Read", {"file_path": "/home/dev/app/tests/test_app.py"}),
        call("toolu_01D", "Grep", {"pattern": "def add", "-n": True, "output_mode": "content"})]},
    result("toolu_01C", "     1\tfrom app import add\n     2\tdef test_add():\n     3\t    assert add(2, 2) == 4\n"),
    result("toolu_01D", "app.py:1:def add(a, b): return a - b"),
    # The user pasted a screenshot along with the results.
    {"role": "user", "content": [{"type": "text", "text": "here is what I see"},
                                 {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    {"role": "assistant", "content": "The bug is in add().", "tool_calls": [
        call("toolu_01E", "Edit", {"file_path": "/home/dev/app/app.py", "old_string": "a - b",
                                   "new_string": "a + b"})]},
    # Interrupted: Claude Code sends an error result, then the user's new instruction.
    result("toolu_01E", "The user doesn't want to proceed with this tool use. The tool use was rejected.",
           is_error=True),
    {"role": "user", "content": "[Request interrupted by user for tool use]"},
    {"role": "user", "content": "Use replace_all and check the docs for the library first."},
    # A dropped connection left a partial answer; the retry made a second assistant message with the call.
    {"role": "assistant", "content": "Let me check the"},
    {"role": "assistant", "content": None, "tool_calls": [
        call("toolu_01F", "mcp__plugin_context7_context7__resolve-library-id.v2", {"libraryName": "pytest"}),
        call("toolu_01G", "WebFetch", {"url": "https://docs.pytest.org", "prompt": "assert rewriting"})]},
    result("toolu_01F", "/pytest-dev/pytest"),
    # toolu_01G never got a result (Claude Code was stopped): it must not reach Kiro unpaired.
    {"role": "user", "content": "Never mind the fetch, apply the fix."},
    {"role": "assistant", "content": None, "tool_calls": [
        call("toolu_01H", "Edit", {"file_path": "/home/dev/app/app.py", "old_string": "a - b",
                                   "new_string": "a + b", "replace_all": True})]},
    result("toolu_01H", "The file /home/dev/app/app.py has been updated."),
]


def request_points():
    """Every prefix of the conversation that CCR would have sent: those ending in user or tool messages."""
    points = []
    for i, message in enumerate(CONVERSATION):
        following = CONVERSATION[i + 1]["role"] if i + 1 < len(CONVERSATION) else None
        if message["role"] in ("user", "tool") and following not in ("user", "tool"):
            points.append(i + 1)
    return points


@pytest.mark.parametrize("end", request_points())
def test_every_request_of_the_session_is_well_formed(client, auth, fake_upstream, end):
    fake_upstream.script({"texts": ["ok"]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": "claude-sonnet-4-20250514", "messages": CONVERSATION[:end], "tools": TOOLS,
        "stream": True, "max_tokens": 32000, "temperature": 1})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "[DONE]" in response.get_data(as_text=True)
    [sent] = fake_upstream.requests()
    assert_well_formed(sent["body"])


def upstream_body(client, auth, fake_upstream, **extra):
    fake_upstream.script({"texts": ["ok"]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": "claude-sonnet-4-5", "messages": CONVERSATION, "tools": TOOLS, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)
    return fake_upstream.requests()[-1]["body"]


def test_the_full_session_keeps_what_matters(client, auth, fake_upstream):
    body = upstream_body(client, auth, fake_upstream)
    assert_well_formed(body)
    state = body["conversationState"]
    history = [h.get("userInputMessage") or h.get("assistantResponseMessage") for h in state["history"]]
    assert history[0]["content"].startswith("You are Claude Code, Anthropic's official CLI for Claude.\n")
    uses = [u["toolUseId"] for h in history for u in h.get("toolUses", [])]
    assert uses == ["toolu_01A", "toolu_01B", "toolu_01C", "toolu_01D", "toolu_01E", "toolu_01F", "toolu_01H"]
    results = {r["toolUseId"]: r for h in history for r in h.get("userInputMessageContext", {}).get("toolResults", [])}
    assert results["toolu_01E"]["status"] == "error"
    assert "toolu_01LOSTCALL0000000000000" not in results
    assert any(h.get("images") for h in history)
    assert any(h["content"] == "Let me check the" and h.get("toolUses") for h in history)  # merged, kept
    current = state["currentMessage"]["userInputMessage"]
    assert [r["toolUseId"] for r in current["userInputMessageContext"]["toolResults"]] == ["toolu_01H"]
    names = [t["toolSpecification"]["name"] for t in current["userInputMessageContext"]["tools"]]
    assert len(names) == len(TOOLS) and "Bash" in names and "mcp__ide__getDiagnostics" in names
    task = current["userInputMessageContext"]["tools"][0]["toolSpecification"]
    assert len(task["description"]) == 10_000


def test_compacted_follow_up_without_tools_declares_the_used_ones(client, auth, fake_upstream):
    fake_upstream.script({"texts": ["ok"]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": "claude-sonnet-4-5", "messages": CONVERSATION + [{"role": "user", "content": "summarise"}]})
    assert response.status_code == 200
    body = fake_upstream.requests()[-1]["body"]
    assert_well_formed(body)
    tools = body["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"]
    assert {t["toolSpecification"]["name"] for t in tools} >= {"TodoWrite", "Bash", "Read", "Grep", "Edit"}


def test_the_answers_tool_call_uses_the_client_name(client, auth, fake_upstream):
    long = TOOLS[-1]["function"]["name"]
    body = upstream_body(client, auth, fake_upstream)
    upstream = [t["toolSpecification"]["name"] for t in body["conversationState"]["currentMessage"][
        "userInputMessage"]["userInputMessageContext"]["tools"]][-1]
    assert upstream != long
    fake_upstream.script({"events": [
        {"event": "toolUseEvent", "payload": {"name": upstream, "toolUseId": "tooluse_x"}},
        {"event": "toolUseEvent", "payload": {"input": '{"libraryName": "flask"}', "name": upstream,
                                              "toolUseId": "tooluse_x"}},
        {"event": "toolUseEvent", "payload": {"name": upstream, "stop": True, "toolUseId": "tooluse_x"}}]})
    response = client.post("/v1/chat/completions", headers=auth, json={
        "model": "claude-sonnet-4-5", "messages": CONVERSATION, "tools": TOOLS})
    message = response.get_json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == long
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"libraryName": "flask"}
