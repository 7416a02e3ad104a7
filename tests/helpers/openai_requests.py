"""OpenAI chat requests ki2api must refuse, each with the parameter its 400 names (translation and route tests)."""
import base64

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 30
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def tool(name, **extra):
    """An OpenAI function tool named `name` with `extra` in its function object."""
    return {"type": "function", "function": {"name": name, **extra}}


BAD_TOOL_REQUESTS = [
    ({"tools": "x"}, "tools"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"tools": [{"type": "function"}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": 5}}]}, "tools[0].function.name"),
    ({"tools": [tool("a"), tool("a")]}, "tools[1].function.name"),
    ({"tools": [tool("a", parameters="{}")]}, "tools[0].function.parameters"),
    ({"tools": [tool("a", description=["x"])]}, "tools[0].function.description"),
    ({"tool_choice": "sometimes", "tools": [tool("a")]}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "b"}}, "tools": [tool("a")]}, "tool_choice"),
    ({"tool_choice": {"type": "function"}, "tools": [tool("a")]}, "tool_choice"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"reasoning": {"max_tokens": -1}}, "reasoning.max_tokens"),
    ({"reasoning": "high"}, "reasoning"),
    ({"thinking": {"type": "enabled", "budget_tokens": "lots"}}, "thinking.budget_tokens"),
    ({"thinking": True}, "thinking"),
]
BAD_MESSAGES = [
    ([{"role": "assistant", "tool_calls": "x"}], "messages[0].tool_calls"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}], "messages[0].tool_calls[0]"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": ""}}]}], "messages[0].tool_calls[0]"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "function": {"name": "f"}}]}],
     "messages[0].tool_calls[0].type"),
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}],
     "messages[0].tool_calls[0].function.arguments"),
    ([{"role": "assistant", "reasoning_content": 5}], "messages[0].reasoning_content"),
    ([{"role": "tool", "tool_call_id": "", "content": "x"}], "messages[0].tool_call_id"),
    ([{"role": "tool", "tool_call_id": "c", "content": "x", "is_error": "yes"}], "messages[0].is_error"),
    ([{"role": "tool", "tool_call_id": "c", "content": [{"type": "input_audio", "input_audio": {}}]}],
     "messages[0].content[0]"),
    ([{"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}],
     "messages[0].content[0]"),
]
# Arguments that crashed the translation (deep nesting, a 5,000-digit integer) or went upstream as invalid JSON.
BAD_MESSAGES += [
    ([{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}]}],
     "messages[0].tool_calls[0].function.arguments") for arguments in (
        "[" * 5000 + "]" * 5000, '{"a": ' + "[" * 200 + "]" * 200 + "}", '{"n": ' + "9" * 5000 + "}",
        '{"n": NaN}', '{"n": Infinity}', '{"n": 1e999}', '{"n": 1', "null")
]
