"""Stable conversation ids: one per conversation (and account), the same on every turn and tool step of it."""
from __future__ import annotations

import re

from ki2api.translate import anthropic_request, openai_request
from ki2api.translate.conversation import conversation_ids, conversation_key, with_conversation
from ki2api.translate.history import build_payload

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
KEY = "sk-client-secret"
ALICE, BOB = "a" * 64, "b" * 64
SYSTEM = {"role": "system", "content": "You are terse."}
FIRST = {"role": "user", "content": "List the files."}
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "a.txt b.txt"}
TOOLS = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object", "properties": {}}}}]


def openai_key(messages: list[dict], key: str = KEY, **body) -> str:
    return conversation_key(openai_request.parse_conversation({"messages": messages, **body}), key)


def anthropic_key(body: dict, key: str = KEY) -> str:
    return conversation_key(anthropic_request.parse_conversation(body), key)


def test_a_follow_up_and_every_tool_step_keep_the_conversations_key():
    first = openai_key([SYSTEM, FIRST], tools=TOOLS)
    assert openai_key([SYSTEM, FIRST, CALL, RESULT], tools=TOOLS) == first  # the tool loop's next step
    assert openai_key([SYSTEM, FIRST, CALL, RESULT, {"role": "assistant", "content": "a.txt, b.txt"},
                       {"role": "user", "content": "And hidden ones?"}], tools=TOOLS) == first  # the next turn
    assert openai_key([SYSTEM, FIRST]) == first  # tools, model and options are not the conversation


def test_another_first_message_system_or_client_key_is_another_conversation():
    first = openai_key([SYSTEM, FIRST])
    assert openai_key([SYSTEM, {"role": "user", "content": "Delete the files."}]) != first
    assert openai_key([{"role": "system", "content": "You are verbose."}, FIRST]) != first
    assert openai_key([FIRST]) != first
    assert openai_key([SYSTEM, FIRST], key="another-client") != first


def test_anthropic_cache_marks_on_the_first_message_do_not_change_the_key():
    # Claude Code marks the newest message for caching: the first message carries the mark only on turn one.
    marked = {"role": "user", "content": [{"type": "text", "text": "Fix the bug.",
                                           "cache_control": {"type": "ephemeral"}}]}
    plain = {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]}
    system = [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]
    turn_one = anthropic_key({"model": "m", "max_tokens": 9, "system": system, "messages": [marked]})
    turn_two = anthropic_key({"model": "m", "max_tokens": 9, "system": system, "messages": [
        plain, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "Thanks"}]})
    assert turn_one == turn_two
    other = anthropic_key({"model": "m", "max_tokens": 9, "system": system, "messages": [
        {"role": "user", "content": "Write the tests."}]})
    assert other != turn_one


def test_ids_are_uuid4_shaped_differ_per_account_and_reveal_nothing():
    key = openai_key([SYSTEM, FIRST])
    conversation, continuation = conversation_ids(key, ALICE)
    assert UUID4.fullmatch(conversation) and UUID4.fullmatch(continuation) and conversation != continuation
    assert conversation_ids(key, ALICE) == (conversation, continuation)
    assert conversation_ids(key, BOB)[0] != conversation  # each account is its own client to Kiro
    assert KEY not in key and "files" not in key


def test_with_conversation_sets_both_ids_and_leaves_the_payload_alone():
    payload = build_payload(openai_request.parse_conversation({"messages": [FIRST]}), "claude-sonnet-4.5")
    before = dict(payload["conversationState"])
    sent = with_conversation(payload, "k" * 64, ALICE)
    state = sent["conversationState"]
    assert (state["conversationId"], state["agentContinuationId"]) == conversation_ids("k" * 64, ALICE)
    assert {k: v for k, v in state.items() if k not in ("conversationId", "agentContinuationId")} == \
        {k: v for k, v in before.items() if k not in ("conversationId", "agentContinuationId")}
    assert payload["conversationState"] == before


def test_kiro_sees_one_id_per_conversation(client, fake_upstream, auth):
    def chat(messages: list[dict]) -> None:
        reply = client.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": messages,
                                                          "tools": TOOLS}, headers=auth)
        assert reply.status_code == 200

    chat([SYSTEM, FIRST])
    chat([SYSTEM, FIRST, CALL, RESULT])
    chat([SYSTEM, {"role": "user", "content": "Something else."}])
    message = client.post("/v1/messages", headers=auth, json={
        "model": "claude-sonnet-4-5", "max_tokens": 50, "system": "You are terse.",
        "messages": [{"role": "user", "content": "List the files."}]})
    assert message.status_code == 200
    records = fake_upstream.requests()
    ids = [r["conversation_id"] for r in records]
    continuations = [r["body"]["conversationState"]["agentContinuationId"] for r in records]
    assert ids[0] == ids[1] and continuations[0] == continuations[1]  # one conversation, two requests
    assert ids[2] != ids[0]  # another conversation
    assert ids[3] == ids[0]  # the same conversation, asked through the Anthropic API by the same client
    assert all(UUID4.fullmatch(i) for i in ids)
