from ki2api.translate.history import CONTINUE, SYSTEM_ACK, Conversation, Turn, build_payload


def roles(payload):
    history = payload["conversationState"]["history"]
    return ["user" if "userInputMessage" in h else "assistant" for h in history]


def test_system_becomes_a_leading_pair_and_last_user_is_current():
    p = build_payload(Conversation("be brief", [Turn("user", "hi")]), "claude-sonnet-4.5")
    state = p["conversationState"]
    assert state["history"][0]["userInputMessage"]["content"] == "be brief"
    assert state["history"][1]["assistantResponseMessage"]["content"] == SYSTEM_ACK
    current = state["currentMessage"]["userInputMessage"]
    assert current == {"content": "hi", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}
    assert state["chatTriggerType"] == "MANUAL" and state["agentTaskType"] == "vibe"


def test_same_role_runs_merge_and_history_alternates():
    turns = [Turn("user", "a"), Turn("user", "b"), Turn("assistant", "c"), Turn("assistant", "d"),
             Turn("user", "e")]
    p = build_payload(Conversation("", turns), "m")
    assert roles(p) == ["user", "assistant"]
    assert p["conversationState"]["history"][0]["userInputMessage"]["content"] == "a\nb"
    assert p["conversationState"]["history"][1]["assistantResponseMessage"]["content"] == "c\nd"


def test_leading_and_trailing_assistant_turns_are_paired():
    p = build_payload(Conversation("", [Turn("assistant", "hello"), Turn("user", "q"), Turn("assistant", "pre")]), "m")
    assert roles(p) == ["user", "assistant", "user", "assistant"]
    assert p["conversationState"]["history"][0]["userInputMessage"]["content"] == CONTINUE
    assert p["conversationState"]["currentMessage"]["userInputMessage"]["content"] == CONTINUE


def test_tool_uses_pair_with_results_and_orphans_are_dropped():
    use = {"toolUseId": "t1", "name": "Read", "input": {"path": "a"}}
    orphan_use = {"toolUseId": "t2", "name": "Write", "input": {}}
    result = {"toolUseId": "t1", "content": [{"text": "ok"}], "status": "success"}
    orphan_result = {"toolUseId": "zz", "content": [{"text": "?"}], "status": "success"}
    turns = [Turn("user", "go"), Turn("assistant", "", tool_uses=[use, orphan_use]),
             Turn("user", "", tool_results=[result, dict(result), orphan_result])]
    state = build_payload(Conversation("", turns), "m")["conversationState"]
    assistant = state["history"][1]["assistantResponseMessage"]
    assert assistant["toolUses"] == [use]
    assert assistant["content"] == " "
    ctx = state["currentMessage"]["userInputMessage"]["userInputMessageContext"]
    assert ctx["toolResults"] == [result]
    assert state["currentMessage"]["userInputMessage"]["content"] == ""
    # Read is used in history but not declared by the client: a stub spec is declared.
    assert [t["toolSpecification"]["name"] for t in ctx["tools"]] == ["Read"]


def test_duplicate_tool_uses_are_sent_once_and_the_instruction_ends_the_current_message():
    use = {"toolUseId": "t1", "name": "Read", "input": {}}
    result = {"toolUseId": "t1", "content": [{"text": "ok"}], "status": "success"}
    turns = [Turn("user", "go"), Turn("assistant", "", tool_uses=[use, dict(use)]),
             Turn("user", "", tool_results=[result])]
    state = build_payload(Conversation("", turns, instruction="[note]"), "m")["conversationState"]
    assert state["history"][1]["assistantResponseMessage"]["toolUses"] == [use]
    assert state["currentMessage"]["userInputMessage"]["content"] == "[note]"
    plain = build_payload(Conversation("", [Turn("user", "hi")], instruction="[note]"), "m")["conversationState"]
    assert plain["currentMessage"]["userInputMessage"]["content"] == "hi\n\n[note]"


def test_merged_assistant_turns_keep_their_reasoning():
    turns = [Turn("user", "q"), Turn("assistant", "a", reasoning="r1"), Turn("assistant", "b", reasoning="r2"),
             Turn("user", "next")]
    state = build_payload(Conversation("", turns, thinking_budget=1024), "m")["conversationState"]
    assert state["history"][3]["assistantResponseMessage"]["content"] == "<thinking>r1\nr2</thinking>\n\na\nb"


def test_history_reasoning_is_dropped_without_thinking():
    turns = [Turn("user", "q"), Turn("assistant", "a", reasoning="r1"), Turn("assistant", "", reasoning="r2"),
             Turn("user", "next")]
    state = build_payload(Conversation("", turns), "m")["conversationState"]
    assert state["history"][1]["assistantResponseMessage"]["content"] == "a"


def test_native_reasoning_goes_back_signed_and_fields_sit_beside_the_conversation():
    signed = Turn("assistant", "4", reasoning="Add them.", signed_reasoning=("Add them.", "sig"))
    unsigned = Turn("assistant", "5", reasoning="my own notes")
    redacted = Turn("assistant", "6", redacted_reasoning="opaque")
    turns = [Turn("user", "a"), signed, Turn("user", "b"), unsigned, Turn("user", "c"), redacted, Turn("user", "d")]
    fields = {"output_config": {"effort": "high"}}
    p = build_payload(Conversation("", turns, native_reasoning=True, request_fields=fields), "claude-sonnet-4.6")
    assert p["additionalModelRequestFields"] == fields
    assistants = [h["assistantResponseMessage"] for h in p["conversationState"]["history"][1::2]]
    assert assistants == [
        {"content": "4", "reasoningContent": {"reasoningText": {"text": "Add them.", "signature": "sig"}}},
        {"content": "5"},  # unsigned thinking is not replayed: Kiro checks signatures
        {"content": "6", "reasoningContent": {"redactedContent": "opaque"}}]
    legacy = build_payload(Conversation("", turns, thinking_budget=2048), "claude-sonnet-4.5")
    assert "additionalModelRequestFields" not in legacy
    first = legacy["conversationState"]["history"][3]["assistantResponseMessage"]
    assert first == {"content": "<thinking>Add them.</thinking>\n\n4"}


def test_merged_turns_keep_the_first_signed_reasoning():
    turns = [Turn("user", "a"), Turn("assistant", "x", signed_reasoning=("one", "s1")),
             Turn("assistant", "y", signed_reasoning=("two", "s2")), Turn("user", "b")]
    p = build_payload(Conversation("", turns, native_reasoning=True), "m")
    assistant = p["conversationState"]["history"][1]["assistantResponseMessage"]
    assert assistant["reasoningContent"]["reasoningText"] == {"text": "one", "signature": "s1"}
