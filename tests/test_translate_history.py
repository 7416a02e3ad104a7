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
