"""Tools, images and thinking through gunicorn + gevent workers, driven by the official openai SDK."""
from __future__ import annotations

import base64
import json
import re

import openai
import pytest

from tests.helpers.credentials import KEY
from tests.helpers.capture import decoded_events
from tests.helpers.gateway import module_gateway
from tests.helpers.openai_schema import validate

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
GLOB = {"type": "function", "function": {
    "name": "glob", "description": "Find files by glob pattern",
    "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": {"pattern": {"type": "string"}, "path": {"type": "string", "default": None},
                                  "limit": {"type": "integer"}},
                   "required": ["pattern"], "additionalProperties": False}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def gw(fake_kiro_server, tmp_path_factory):
    """One gateway for the module (the fake is reset before each test by `fake_upstream`)."""
    with module_gateway(fake_kiro_server, tmp_path_factory.mktemp("gw"), expires_in=6 * 3600) as gateway:
        yield gateway


@pytest.fixture
def sdk(gw, fake_upstream):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)


def tool_events(calls):
    """Upstream toolUseEvent frames for [(id, name, [input pieces])], as Kiro streams them."""
    events = []
    for tool_id, name, pieces in calls:
        events.append({"event": "toolUseEvent", "payload": {"name": name, "toolUseId": tool_id}})
        for piece in [""] + pieces:
            events.append({"event": "toolUseEvent", "payload": {"input": piece, "name": name, "toolUseId": tool_id}})
        events.append({"event": "toolUseEvent", "payload": {"name": name, "stop": True, "toolUseId": tool_id}})
    return events


def gather_stream(stream):
    """Content, reasoning, tool calls (assembled by index), finish reason and the raw chunks of a stream."""
    content, reasoning, calls, finish, chunks = "", "", {}, None, []
    for chunk in stream:
        chunks.append(chunk)
        validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += getattr(delta, "reasoning_content", None) or ""
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
            if call.id:
                assert entry["id"] is None, "a call's id comes once, in its first delta"
                entry["id"], entry["name"] = call.id, call.function.name
                assert call.function.arguments == ""
            else:
                assert entry["id"] is not None, "the name comes before the arguments"
                entry["arguments"] += call.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    return content, reasoning, [calls[i] for i in sorted(calls)], finish, chunks


def current(request):
    return request["body"]["conversationState"]["currentMessage"]["userInputMessage"]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(sdk, fake_upstream, stream):
    fake_upstream.script({"events": decoded_events()},
                         {"texts": ["I found ", "2 images."], "context_usage": 9.0})
    messages = [{"role": "system", "content": "You are a file assistant."},
                {"role": "user", "content": "Which images are here?"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[GLOB], stream=stream)
    if stream:
        text, _, calls, finish, _ = gather_stream(first)
        call = {"id": calls[0]["id"], "type": "function",
                "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}
    else:
        validate(first.model_dump(exclude_unset=True), "CreateChatCompletionResponse")
        text, finish = first.choices[0].message.content, first.choices[0].finish_reason
        call = first.choices[0].message.tool_calls[0].model_dump()
    assert finish == "tool_calls"
    assert text == "我需要先看看你说的图片。让我查看当前目录下的图片文件。"
    assert call["function"]["name"] == "glob"
    assert json.loads(call["function"]["arguments"])["pattern"] == "**/*.{png,jpg,jpeg,gif,webp}"

    messages += [{"role": "assistant", "content": text, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "a.png\nb.jpg"}]
    second = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[GLOB], stream=stream)
    final = gather_stream(second)[0] if stream else second.choices[0].message.content
    assert final == "I found 2 images."

    sent = [r["body"] for r in fake_upstream.requests()]
    spec = current(fake_upstream.requests()[0])["userInputMessageContext"]["tools"][0]["toolSpecification"]
    assert spec["inputSchema"]["json"] == {"type": "object", "properties": {
        "pattern": {"type": "string"}, "path": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["pattern"], "additionalProperties": False}
    history = sent[1]["conversationState"]["history"]
    assert history[-1]["assistantResponseMessage"]["toolUses"] == [
        {"toolUseId": "tooluse_6W5RfSW6vl9zEKLVEWNwoX", "name": "glob", "input": json.loads(call["function"]["arguments"])}]
    ctx = current(fake_upstream.requests()[1])["userInputMessageContext"]
    assert ctx["toolResults"] == [{"toolUseId": "tooluse_6W5RfSW6vl9zEKLVEWNwoX",
                                   "content": [{"text": "a.png\nb.jpg"}], "status": "success"}]
    assert [t["toolSpecification"]["name"] for t in ctx["tools"]] == ["glob"]


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_calls(sdk, fake_upstream, stream):
    fake_upstream.script({"events": [{"event": "assistantResponseEvent", "payload": {"content": "Both cities."}}]
                          + tool_events([("tooluse_oslo", "get_weather", ['{"city":', ' "Oslo"}']),
                                         ("tooluse_rome", "get_weather", ['{"city": "Rome"}'])]),
                          "context_usage": 1.0})
    result = sdk.chat.completions.create(model=MODEL, tools=[WEATHER], stream=stream,
                                         messages=[{"role": "user", "content": "Weather in Oslo and Rome?"}])
    if stream:
        content, _, calls, finish, _ = gather_stream(result)
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls]
    else:
        content, finish = result.choices[0].message.content, result.choices[0].finish_reason
        got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in result.choices[0].message.tool_calls]
    assert (content, finish) == ("Both cities.", "tool_calls")
    assert got == [("tooluse_oslo", "get_weather", {"city": "Oslo"}), ("tooluse_rome", "get_weather", {"city": "Rome"})]


def test_long_tool_names_come_back_as_the_client_sent_them(sdk, fake_upstream):
    long = "mcp__filesystem_server__" + "read_multiple_files_with_metadata_" * 2
    tool = {"type": "function", "function": {"name": long, "parameters": {"type": "object"}}}
    fake_upstream.script({"texts": ["unused"]})
    sdk.chat.completions.create(model=MODEL, tools=[tool], messages=[{"role": "user", "content": "x"}])
    upstream_name = current(fake_upstream.requests()[-1])["userInputMessageContext"]["tools"][0][
        "toolSpecification"]["name"]
    assert len(upstream_name) <= 63
    fake_upstream.script({"events": tool_events([("tooluse_1", upstream_name, ["{}"])])})
    result = sdk.chat.completions.create(model=MODEL, tools=[tool], messages=[{"role": "user", "content": "x"}])
    assert result.choices[0].message.tool_calls[0].function.name == long


@pytest.mark.parametrize("choice,offered,note", [
    ("none", [], "do not call any tool"),
    ("required", ["glob", "get_weather"], "at least one of the available tools"),
    ({"type": "function", "function": {"name": "get_weather"}}, ["get_weather"], "the tool `get_weather`"),
])
def test_tool_choice_shapes_the_upstream_request(sdk, fake_upstream, choice, offered, note):
    fake_upstream.script({"texts": ["ok"]})
    sdk.chat.completions.create(model=MODEL, tools=[GLOB, WEATHER], tool_choice=choice,
                                messages=[{"role": "user", "content": "Go."}])
    msg = current(fake_upstream.requests()[-1])
    assert [t["toolSpecification"]["name"] for t in msg.get("userInputMessageContext", {}).get("tools", [])] == offered
    assert msg["content"].startswith("Go.\n\n[") and note in msg["content"]


def test_images_reach_the_upstream(sdk, fake_upstream):
    fake_upstream.script({"texts": ["A tiny PNG."]})
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    result = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert result.choices[0].message.content == "A tiny PNG."
    msg = current(fake_upstream.requests()[-1])
    assert msg["images"] == [{"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}]
    assert msg["content"] == "What is this?"


@pytest.mark.parametrize("url,words", [
    ("https://example.com/cat.png", "data: URL"),
    ("data:image/png;base64," + base64.b64encode(b"\x00" * (5 * 1024 * 1024 + 10)).decode(), "(larger than 5 MiB|at most 5242880 bytes)"),
    ("data:image/bmp;base64,Qk0AAA==", "not supported"),
])
def test_bad_images_are_400_before_any_upstream_call(sdk, fake_upstream, url, words):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}])
    assert info.value.status_code == 400
    assert re.search(words, info.value.body["message"])
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"
    assert fake_upstream.stats()["chat_requests"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_as_reasoning_content(sdk, fake_upstream, stream):
    fake_upstream.script({"texts": ["<thin", "king>\nThe user wants 2+2.", " Easy.</thinking>", "\n\n2 + 2 = 4."]})
    result = sdk.chat.completions.create(model=f"{MODEL}-thinking", stream=stream,
                                         messages=[{"role": "user", "content": "2+2?"}])
    if stream:
        content, reasoning, _, finish, chunks = gather_stream(result)
        assert {c.model for c in chunks} == {f"{MODEL}-thinking"}
    else:
        message = result.choices[0].message
        content, reasoning, finish = message.content, message.reasoning_content, result.choices[0].finish_reason
        assert result.model == f"{MODEL}-thinking"
    assert (reasoning, content, finish) == ("The user wants 2+2. Easy.", "2 + 2 = 4.", "stop")
    body = fake_upstream.requests()[-1]["body"]["conversationState"]
    assert body["history"][0]["userInputMessage"]["content"].startswith(
        "<thinking_mode>enabled</thinking_mode><max_thinking_length>12288</max_thinking_length>")
    assert body["currentMessage"]["userInputMessage"]["modelId"] == "claude-sonnet-4.5"


def test_reasoning_effort_sets_the_budget(sdk, fake_upstream):
    fake_upstream.script({"texts": ["<thinking>hm</thinking>\n\nYes."]})
    result = sdk.chat.completions.create(model=MODEL, reasoning_effort="low",
                                         messages=[{"role": "user", "content": "ok?"}])
    assert result.choices[0].message.content == "Yes."
    first = fake_upstream.requests()[-1]["body"]["conversationState"]["history"][0]["userInputMessage"]["content"]
    assert "<max_thinking_length>4096</max_thinking_length>" in first


@pytest.mark.parametrize("stream", [False, True])
def test_real_captured_tool_call_frames(sdk, fake_upstream, stream):
    fake_upstream.script({"fixture": "14"})  # the captured bytes of a real Kiro tool call, exactly
    introspect = {"type": "function", "function": {"name": "introspect", "parameters": {
        "type": "object", "properties": {"query": {"type": "string"}}}}}
    result = sdk.chat.completions.create(model=MODEL, tools=[introspect], stream=stream,
                                         messages=[{"role": "user", "content": "what is the percentage?"}],
                                         **({"stream_options": {"include_usage": True}} if stream else {}))
    if stream:
        content, _, calls, finish, chunks = gather_stream(result)
        usage = chunks[-1].usage
        got = [(c["id"], c["name"], json.loads(c["arguments"])) for c in calls]
        pieces = sum(1 for c in chunks if c.choices and c.choices[0].delta.tool_calls)
        assert pieces == 2  # the name, then the whole arguments once complete (never a cut-off call, issue 21)
    else:
        content, finish, usage = result.choices[0].message.content, result.choices[0].finish_reason, result.usage
        got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in result.choices[0].message.tool_calls]
    assert not content and finish == "tool_calls"
    assert got == [("tooluse_QSfOosa0r0YluOOQ0MolaE", "introspect",
                    {"__tool_use_purpose": "查找关于界面中百分比显示的文档说明",
                     "query": "percentage display bottom bar context window usage"})]
    assert usage.prompt_tokens == round(1.9767999649047852 * 2000)


def test_deep_or_non_finite_tool_json_is_a_400_under_gunicorn_and_nulls_never_reach_kiro(sdk, fake_upstream):
    """The 500s of before (deep arguments or schemas; a 5,000-digit integer) are 400s naming the field in the real
    server too, whose request greenlet has its own stack; nulls in replayed arguments are left out."""
    def ask(arguments, parameters=None):
        tool = {"type": "function", "function": {"name": "ls", **({"parameters": parameters} if parameters else {})}}
        return sdk.chat.completions.create(model=MODEL, tools=[tool], messages=[
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"}])

    deep_schema = {"type": "string"}
    for _ in range(400):  # 800 JSON levels: within what the body parser reads
        deep_schema = {"type": "object", "properties": {"a": deep_schema}}
    cases = [("[" * 5000 + "]" * 5000, None, "function.arguments"), ('{"n": ' + "9" * 5000 + "}", None,
             "function.arguments"), ('{"n": NaN}', None, "function.arguments"),
             ("{}", deep_schema, "tools[0].function.parameters")]
    for arguments, parameters, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            ask(arguments, parameters)
        assert info.value.status_code == 400 and info.value.body["param"].endswith(param), info.value.body
    assert fake_upstream.stats()["chat_requests"] == 0
    fake_upstream.script({"texts": ["listed"]})
    assert ask('{"path": ".", "all": null}').choices[0].message.content == "listed"
    history = fake_upstream.requests()[-1]["body"]["conversationState"]["history"]
    assert history[1]["assistantResponseMessage"]["toolUses"][0]["input"] == {"path": "."}
