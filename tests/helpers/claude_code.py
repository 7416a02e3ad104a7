"""A Claude Code session in Anthropic's format, written by hand from the shapes Claude Code sends to /v1/messages.

System text blocks with cache_control, its tool set with draft-07 schemas plus an MCP tool whose name is too long
for Kiro and the server tool web_search, `<system-reminder>` blocks, thinking blocks with signatures, parallel tool
calls, a rejected tool call, a tool result carrying an image, a pasted image, and two assistant messages in a row.
"""
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
DRAFT7 = "http://json-schema.org/draft-07/schema#"
EPHEMERAL = {"type": "ephemeral"}
LONG_MCP = "mcp__github_enterprise_server__create_or_update_pull_request_review_comment"


def tool(name, description, properties, required=()):
    """A Claude Code tool: its name, description and a draft-07 object schema."""
    return {"name": name, "description": description, "input_schema": {
        "type": "object", "properties": properties, "required": list(required), "additionalProperties": False,
        "$schema": DRAFT7}}


TOOLS = [
    tool("Task", "Launch a new agent to handle complex, multi-step tasks autonomously. " * 200,
         {"description": {"type": "string"}, "prompt": {"type": "string"}, "subagent_type": {"type": "string"}},
         ["description", "prompt", "subagent_type"]),
    tool("Bash", "Executes a given bash command in a persistent shell session.",
         {"command": {"type": "string"}, "timeout": {"type": "number"}, "description": {"type": "string"}},
         ["command"]),
    tool("Glob", "Fast file pattern matching tool", {"pattern": {"type": "string"}, "path": {"type": "string"}},
         ["pattern"]),
    tool("Read", "Reads a file from the local filesystem.",
         {"file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}},
         ["file_path"]),
    tool("TodoWrite", "Create and manage a structured task list",
         {"todos": {"type": "array", "items": {"type": "object", "properties": {
             "content": {"type": "string", "minLength": 1},
             "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}},
             "required": ["content", "status"], "additionalProperties": False}}}, ["todos"]),
    tool(LONG_MCP, "Create or update a review comment",
         {"body": {"type": "string"}, "line": {"type": ["integer", "null"]}}),
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
]
SYSTEM = [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
           "cache_control": EPHEMERAL},
          {"type": "text", "text": "\nYou are an interactive CLI tool that helps users with software engineering "
                                   "tasks.\n\n<env>\nWorking directory: /home/dev/app\n</env>",
           "cache_control": EPHEMERAL}]
REMINDER = {"type": "text", "text": "<system-reminder>\nThis is a reminder that your todo list is currently "
                                    "empty.\n</system-reminder>"}
THINK = {"type": "thinking", "thinking": "The tests fail; list them first.", "signature": "EqQBCkYIBxgCKkB" * 4}


def tool_use(tool_id, name, tool_input):
    """An assistant's tool_use block."""
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def result(tool_id, content, **extra):
    """A user's tool_result block."""
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **extra}


MESSAGES = [
    {"role": "user", "content": [REMINDER, {"type": "text", "text": "fix the failing test",
                                            "cache_control": EPHEMERAL}]},
    {"role": "assistant", "content": [THINK, {"type": "text", "text": "I'll look at the tests."},
                                      tool_use("toolu_01", "Glob", {"pattern": "tests/**/*.py"}),
                                      tool_use("toolu_02", "Bash", {"command": "pytest -q",
                                                                    "description": "Run the tests"})]},
    {"role": "user", "content": [result("toolu_01", "tests/test_app.py\ntests/test_db.py"),
                                 result("toolu_02", [{"type": "text", "text": "1 failed, 12 passed"}], is_error=True),
                                 REMINDER]},
    {"role": "assistant", "content": [tool_use("toolu_03", "Bash", {"command": "rm -rf build"})]},
    {"role": "user", "content": [
        result("toolu_03", "The user doesn't want to proceed with this tool use. The tool use was rejected.",
               is_error=True),
        {"type": "text", "text": "[Request interrupted by user for tool use]"},
        {"type": "text", "text": "don't delete anything; look at the screenshot instead"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
    {"role": "assistant", "content": [tool_use("toolu_04", "Read", {"file_path": "/home/dev/app/shot.png"})]},
    {"role": "user", "content": [result("toolu_04", [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": PNG}}])]},
    {"role": "assistant", "content": [{"type": "text", "text": "The screenshot shows a failing assertion"}]},
    {"role": "assistant", "content": [tool_use("toolu_05", LONG_MCP, {"body": "Fixed in 3f2a", "line": 12}),
                                      tool_use("toolu_06", "TodoWrite", {"todos": [
                                          {"content": "Fix test_db", "status": "in_progress"}]})]},
    {"role": "user", "content": [result("toolu_05", "Comment posted"), result("toolu_06", "Todos updated")]},
]
BODY = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "system": SYSTEM, "tools": TOOLS,
        "metadata": {"user_id": "user_0f3a_account__session_9c1d"}, "temperature": 1, "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 31999}}
