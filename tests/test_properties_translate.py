"""Property tests: the request translators, OpenAI and Anthropic, as the routes chain them.

Every valid conversation becomes a Kiro body that keeps the upstream's rules (alternating history that
ends with the assistant, paired tool uses and results, every used tool declared, no text lost); any other
JSON is refused with a 4xx ApiError whose `param` names the offending field, never another exception.
"""
from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ki2api.errors import ApiError
from ki2api.models import model_names, resolve_model
from ki2api.translate import anthropic_request, openai_request, reasoning
from ki2api.translate.history import build_payload
from tests.fakes.kiro.reasoning import fields_problem, shape_problem
from tests.helpers.kiro_request import assert_well_formed

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = model_names()


def openai_payload(body: dict[str, Any]) -> dict[str, Any]:
    """What routes/openai.py does with a parsed body, up to the upstream call."""
    options = openai_request.parse_options(body)
    model = resolve_model(options.base_model)
    conversation = openai_request.parse_conversation(body)
    ask = reasoning.openai_ask(body, openai_request.split_thinking_suffix(options.model)[1])
    reasoning.apply_reasoning(conversation, ask, model.info.request_fields_schema, options.model, options.max_tokens)
    return build_payload(conversation, model.kiro_id)


def anthropic_payload(body: dict[str, Any]) -> dict[str, Any]:
    """What routes/anthropic.py does with a parsed body, up to the upstream call."""
    options = anthropic_request.parse_options(body)
    model = resolve_model(options.model)
    conversation = anthropic_request.parse_conversation(body, options.thinking_budget)
    reasoning.apply_reasoning(conversation, reasoning.anthropic_ask(body), model.info.request_fields_schema,
                              model.name, options.max_tokens)
    return build_payload(conversation, model.kiro_id)


# --- valid conversations --------------------------------------------------------------------------------------

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
ids = st.from_regex(r"call_[a-z0-9]{6}", fullmatch=True)
tool_names = st.sampled_from(["get_weather", "Read", "read", "bash", "search.web", "a" * 70])
arguments = st.sampled_from(['{"x": 1}', '{"x": null}', '{"x": {"y": null, "z": [1, null]}}', "", "{}"])


@st.composite
def openai_conversations(draw) -> list[dict[str, Any]]:
    """Valid OpenAI message lists: system/developer anywhere, users, assistants with tool calls answered by tools."""
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["system", "developer", "user", "user", "assistant", "tools"]))
        if kind in ("system", "developer", "user"):
            content = draw(st.one_of(text, st.lists(text.map(lambda t: {"type": "text", "text": t}), min_size=1,
                                                    max_size=3)))
            messages.append({"role": kind, "content": content})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(text)})
        else:
            calls = draw(st.lists(st.tuples(ids, tool_names), min_size=1, max_size=3, unique_by=lambda c: c[0]))
            messages.append({"role": "assistant", "content": draw(st.none() | text), "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": draw(arguments)}}
                for cid, name in calls]})
            messages += [{"role": "tool", "tool_call_id": cid, "content": draw(text)} for cid, _ in calls]
    if not any(m["role"] in ("user", "tool") for m in messages):
        messages.append({"role": "user", "content": draw(text)})
    return messages


@st.composite
def anthropic_conversations(draw) -> list[dict[str, Any]]:
    """Valid Anthropic message lists: user/assistant turns, tool_use blocks answered by tool_result blocks."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(text)}]
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            calls = draw(st.lists(st.tuples(ids, tool_names), min_size=1, max_size=3, unique_by=lambda c: c[0]))
            messages.append({"role": "assistant", "content": [{"type": "text", "text": draw(text)}] + [
                {"type": "tool_use", "id": cid, "name": name, "input": {"q": draw(text), "opt": None}}
                for cid, name in calls]})
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": cid, "content": draw(text)} for cid, _ in calls]})
        else:
            messages.append({"role": draw(st.sampled_from(["user", "assistant"])),
                             "content": draw(st.one_of(text, st.just([{"type": "text", "text": "block"}])))})
    return messages


def check_kiro_rules(payload: dict[str, Any], user_texts: list[str]) -> None:
    assert_well_formed(payload)  # the rules the fake Kiro refuses bodies by
    state = payload["conversationState"]
    current = state["currentMessage"]["userInputMessage"]
    history = state["history"]
    assert isinstance(current["content"], str) and current["modelId"]
    roles = [next(iter(entry)) for entry in history]
    assert roles == ["userInputMessage", "assistantResponseMessage"] * (len(history) // 2)
    declared = {t["toolSpecification"]["name"].lower()
                for t in current.get("userInputMessageContext", {}).get("tools", [])}
    messages = [next(iter(e.values())) for e in history] + [current]
    for i, message in enumerate(messages):
        uses = message.get("toolUses") or []
        for use in uses:
            assert use["name"].lower() in declared
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", use["name"])
        answered = {r["toolUseId"] for r in messages[i + 1].get("userInputMessageContext", {}).get("toolResults", [])} \
            if uses else set()
        assert {u["toolUseId"] for u in uses} == answered
        results = message.get("userInputMessageContext", {}).get("toolResults", [])
        if results:
            offered = {u["toolUseId"] for u in (messages[i - 1].get("toolUses") or [])} if i else set()
            assert {r["toolUseId"] for r in results} <= offered
        is_user = i == len(history) or roles[i] == "userInputMessage"
        if is_user and not results:
            assert message["content"] != "" or message.get("images"), message
    sent = "\n".join(m["content"] for m in messages)
    for piece in user_texts:
        assert piece in sent


@PROPERTY
@given(messages=openai_conversations(), model=st.sampled_from(MODELS),
       tools=st.lists(tool_names, unique=True, max_size=4))
def test_valid_openai_conversations_translate_within_kiros_rules(messages, model, tools):
    declared = [{"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"x": {"type": "string", "default": None}}}}} for name in tools]
    payload = openai_payload({"model": model, "messages": messages, **({"tools": declared} if tools else {})})
    users = [m["content"] for m in messages if m["role"] == "user" and isinstance(m["content"], str)]
    check_kiro_rules(payload, users)


@PROPERTY
@given(messages=anthropic_conversations(), model=st.sampled_from(MODELS), system=st.none() | text)
def test_valid_anthropic_conversations_translate_within_kiros_rules(messages, model, system):
    body = {"model": model, "max_tokens": 1024, "messages": messages}
    if system is not None:
        body["system"] = system
    payload = anthropic_payload(body)
    users = [m["content"] for m in messages if m["role"] == "user" and isinstance(m["content"], str)]
    check_kiro_rules(payload, users)


# --- anything else --------------------------------------------------------------------------------------------

KEYS = ["model", "messages", "role", "content", "type", "text", "tool_calls", "function", "name", "arguments", "id",
        "tool_call_id", "image_url", "url", "source", "data", "media_type", "tools", "tool_choice", "stop", "stream",
        "stream_options", "include_usage", "max_tokens", "max_completion_tokens", "n", "thinking", "budget_tokens",
        "system", "tool_use_id", "input", "parameters", "input_schema", "reasoning_effort", "stop_sequences",
        "metadata", "is_error", "logprobs", "description", "signature", "thinking", "reasoning", "reasoning_content",
        "reasoning_details", "output_config", "effort", "display", "enabled"]
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", ""])
TYPES = st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result", "thinking", "function", "base64",
                         "url", "enabled", "auto", "none", "any", "required", "tool"])
scalars = (st.none() | st.booleans() | st.integers(-3, 2 ** 40) | st.floats(allow_nan=False) | st.text(max_size=12)
           | ROLES | TYPES | st.sampled_from(MODELS) | st.just("data:image/png;base64,iVBORw0KGgo="))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS), children, max_size=5), max_leaves=25)
anything = st.none() | json_values
part = st.fixed_dictionaries({"type": TYPES}, optional={
    "text": text | anything, "image_url": st.fixed_dictionaries({"url": scalars}) | anything,
    "source": st.fixed_dictionaries({"type": TYPES, "media_type": st.sampled_from(["image/png", "image/gif", "x"]),
                                     "data": st.sampled_from(["iVBORw0KGgo=", "R0lGODlh", "!!"])}) | anything,
    "id": ids | anything, "name": tool_names | anything, "input": st.dictionaries(text, text) | anything,
    "tool_use_id": ids | anything, "content": text | anything, "thinking": text | anything})
message = st.fixed_dictionaries({"role": ROLES | anything}, optional={
    "content": text | st.lists(part, max_size=3) | anything, "tool_call_id": ids | anything,
    "tool_calls": st.lists(st.fixed_dictionaries({"id": ids | anything, "type": st.just("function") | anything,
                                                  "function": st.fixed_dictionaries(
                                                      {"name": tool_names | anything,
                                                       "arguments": st.sampled_from(["{}", '{"a": 1}', "[]", "{"])
                                                       | anything})}), max_size=2) | anything,
    "name": text | anything, "reasoning_content": text | anything, "is_error": anything,
    "reasoning_details": st.lists(st.fixed_dictionaries({"type": st.just("reasoning.text") | anything}, optional={
        "text": text | anything, "signature": text | anything}), max_size=2) | anything})
tool = st.fixed_dictionaries({"type": st.just("function") | anything, "name": tool_names | anything,
                              "function": st.fixed_dictionaries({"name": tool_names | anything}, optional={
                                  "parameters": st.just({"type": "object"}) | anything}) | anything,
                              "input_schema": st.just({"type": "object"}) | anything})
bodies = st.fixed_dictionaries({"model": st.sampled_from(MODELS), "messages": st.lists(message, max_size=5),
                                "max_tokens": st.integers(1, 5000)},
                               optional={
                                         "tools": st.lists(tool, max_size=3) | anything,
                                         "tool_choice": TYPES | st.fixed_dictionaries({"type": TYPES}) | anything,
                                         "stop": anything, "system": text | st.lists(part, max_size=2) | anything,
                                         "stream": st.booleans() | anything, "thinking": anything, "n": anything,
                                         "stream_options": anything, "reasoning_effort": anything,
                                         "reasoning": anything, "output_config": anything,
                                         "stop_sequences": anything})


def check_reasoning_fields(payload: dict[str, Any]) -> None:
    """What ki2api's own schema check let through, the fake Kiro (jsonschema over the captured list) takes."""
    model_id = payload["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]
    assert fields_problem(payload, model_id) is None and shape_problem(payload) is None


def check_refusal(exc: ApiError, body: dict[str, Any]) -> None:
    assert 400 <= exc.status < 500, (exc.status, exc.message)
    assert isinstance(exc.param, str) and exc.param, exc.message
    root = re.split(r"[.\[]", exc.param)[0]
    assert root in body or root in ("model", "messages", "max_tokens"), (exc.param, exc.message)


@PROPERTY
@given(body=bodies, junk=st.dictionaries(st.sampled_from(["model", "messages", "max_tokens"]), anything, max_size=2))
def test_any_json_is_translated_or_refused_naming_the_field_openai(body, junk):
    body = {**body, **junk}
    try:
        payload = openai_payload(body)
    except ApiError as exc:
        check_refusal(exc, body)
        return
    check_reasoning_fields(payload)


@PROPERTY
@given(body=bodies, junk=st.dictionaries(st.sampled_from(["model", "messages", "max_tokens"]), anything, max_size=2))
def test_any_json_is_translated_or_refused_naming_the_field_anthropic(body, junk):
    body = {**body, **junk}
    try:
        payload = anthropic_payload(body)
    except ApiError as exc:
        check_refusal(exc, body)
        if exc.param != "model":  # ModelNotFound's message quotes the unknown model instead
            assert exc.message.startswith(re.split(r"[.\[]", exc.param)[0]), (exc.param, exc.message)
        return
    check_reasoning_fields(payload)


@PROPERTY
@given(messages=openai_conversations(), index=st.integers(0, 50),
       broken=st.sampled_from([{"role": "wizard"}, {"role": None}, {"role": {"x": 1}}, "just a string", 42,
                               {"role": "user", "content": 7}, {"role": "user", "content": [{"type": "video"}]},
                               {"role": "tool", "content": "orphan"},
                               {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f",
                                                                                            "arguments": "{nope"}}]}]))
def test_one_broken_openai_message_is_refused_naming_it(messages, index, broken):
    at = index % (len(messages) + 1)
    body = {"model": "claude-sonnet-4-5", "messages": messages[:at] + [broken] + messages[at:]}
    try:
        openai_payload(body)
    except ApiError as exc:
        assert exc.status == 400
        assert exc.param is not None and exc.param.startswith(f"messages[{at}]"), (exc.param, exc.message)
        return
    raise AssertionError(f"accepted a broken message: {broken!r}")
