"""Anthropic cache_control breakpoints -> Kiro cache points on the messages that end the marked prefixes."""
import copy

from ki2api.models import BUILTIN, ModelInfo, parse_model_list
from ki2api.translate.anthropic_request import parse_conversation
from ki2api.translate.cache_points import count, fit, marked, without
from ki2api.translate.history import build_payload
from tests.helpers.kiro_request import assert_well_formed

CC = {"type": "ephemeral"}
LONG = "The quick brown fox jumps over the lazy dog near the riverbank today. " * 400  # ~5,600 tokens
SONNET = BUILTIN["claude-sonnet-4.5"]  # 4 points of at least 1,024 tokens
TOOL = {"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def state(body, info=None):
    """Kiro's conversationState for an Anthropic body, cache points fitted to `info` (None: not fitted)."""
    built = build_payload(parse_conversation({"model": "claude-sonnet-4-5", "max_tokens": 100, **body}),
                          "claude-sonnet-4.5")
    assert_well_formed(built)
    return (fit(built, info) if info else built)["conversationState"]


def pointed(conversation_state):
    """The roles and contents of the Kiro messages carrying a cache point, in order ("current" for the last)."""
    found = []
    for entry in conversation_state["history"]:
        (role, message), = entry.items()
        if "cachePoint" in message:
            assert message["cachePoint"] == {"type": "default"}
            found.append((role, message["content"]))
    current = conversation_state["currentMessage"]["userInputMessage"]
    if "cachePoint" in current:
        found.append(("current", current["content"]))
    return found


def text(words, mark=False):
    return {"type": "text", "text": words, **({"cache_control": CC} if mark else {})}


def test_a_system_breakpoint_goes_on_the_message_carrying_the_system_prompt():
    got = state({"system": [text(LONG, mark=True)], "messages": [{"role": "user", "content": "Hi"}]})
    assert pointed(got) == [("userInputMessage", LONG)]
    assert "cachePoint" not in got["history"][1]["assistantResponseMessage"]
    assert "cachePoint" not in got["currentMessage"]["userInputMessage"]


def test_a_block_breakpoint_goes_on_the_kiro_message_holding_the_block():
    messages = [{"role": "user", "content": [text("first question " + LONG, mark=True)]},
                {"role": "assistant", "content": [text("an answer", mark=True)]},
                {"role": "user", "content": [text("the last question", mark=True)]}]
    got = state({"messages": messages})
    assert [role for role, _ in pointed(got)] == ["userInputMessage", "assistantResponseMessage", "current"]
    assert pointed(got)[1][1] == "an answer" and pointed(got)[2][1] == "the last question"


def test_merged_messages_carry_the_point_of_any_block_they_hold():
    """Kiro merges consecutive messages of one role: the merged message holds the marked block."""
    messages = [{"role": "user", "content": [text("part one", mark=True)]},
                {"role": "user", "content": "part two"},
                {"role": "assistant", "content": "answer"},
                {"role": "user", "content": "next"}]
    got = state({"messages": messages})
    assert pointed(got) == [("userInputMessage", "part one\npart two")]


def test_a_tool_result_breakpoint_and_a_nested_one_mark_the_user_message():
    for result in ({"type": "tool_result", "tool_use_id": "t1", "content": "sunny", "cache_control": CC},
                   {"type": "tool_result", "tool_use_id": "t1", "content": [text("sunny", mark=True)]}):
        messages = [{"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                                                       "input": {"city": "Paris"}}]},
                    {"role": "user", "content": [result]}]
        got = state({"tools": [TOOL], "messages": messages})
        assert [role for role, _ in pointed(got)] == ["current"]


def test_a_tools_breakpoint_goes_on_the_first_message():
    marked_tool = {**TOOL, "cache_control": CC}
    with_system = state({"tools": [marked_tool], "system": "Be brief.",
                         "messages": [{"role": "user", "content": "Hi"}]})
    assert pointed(with_system) == [("userInputMessage", "Be brief.")]
    without_system = state({"tools": [marked_tool], "messages": [{"role": "user", "content": "Hi"},
                                                                  {"role": "assistant", "content": "Hello"},
                                                                  {"role": "user", "content": "Bye"}]})
    assert pointed(without_system) == [("userInputMessage", "Hi")]


def test_the_cap_keeps_the_last_points():
    messages = []
    for i in range(6):
        messages += [{"role": "user", "content": [text(f"question {i} " + LONG, mark=True)]},
                     {"role": "assistant", "content": f"answer {i}"}]
    messages.append({"role": "user", "content": [text("last", mark=True)]})
    got = state({"messages": messages}, SONNET)
    assert [content[:10] for _, content in pointed(got)] == ["question 3", "question 4", "question 5", "last"]


def test_a_prefix_under_the_minimum_gets_no_point():
    small = [{"role": "user", "content": [text("short", mark=True)]},
             {"role": "assistant", "content": "ok"},
             {"role": "user", "content": [text(LONG, mark=True)]}]
    got = state({"messages": small}, SONNET)
    assert [role for role, _ in pointed(got)] == ["current"]  # the first prefix is a few tokens
    opus = state({"system": [text(LONG[:4000], mark=True)], "messages": [{"role": "user", "content": "Hi"}]},
                 BUILTIN["claude-opus-4.5"])  # ~800 tokens: under opus's 4,096
    assert pointed(opus) == []
    sonnet = state({"system": [text(LONG[:8000], mark=True)], "messages": [{"role": "user", "content": "Hi"}]},
                   SONNET)  # ~1,600 tokens: over sonnet's 1,024
    assert len(pointed(sonnet)) == 1


def test_models_without_caching_get_none():
    body = {"system": [text(LONG, mark=True)], "messages": [{"role": "user", "content": [text(LONG, mark=True)]}]}
    assert pointed(state(body, BUILTIN["deepseek-3.2"])) == []
    assert pointed(state(body, ModelInfo("unknown"))) == []
    assert len(pointed(state(body, SONNET))) == 2


def test_no_breakpoint_no_point():
    got = state({"system": LONG, "messages": [{"role": "user", "content": LONG}]}, SONNET)
    assert pointed(got) == []


def test_without_copies_and_leaves_the_payload_alone():
    built = fit(build_payload(parse_conversation({"model": "m", "max_tokens": 10, "system": [text(LONG, mark=True)],
                                                  "messages": [{"role": "user", "content": [text(LONG, True)]}]}),
                              "claude-sonnet-4.5"), SONNET)
    before = copy.deepcopy(built)
    bare = without(built)
    assert count(built) == 2 and count(bare) == 0 and built == before
    assert without(bare) is bare


def test_marked_needs_a_cache_control_object():
    assert marked({"type": "text", "cache_control": {"type": "ephemeral", "ttl": "1h"}})
    assert not marked({"type": "text", "cache_control": None}) and not marked({"type": "text"})
    assert not marked("text")


def test_the_model_list_gives_the_caching_limits():
    listed = parse_model_list({"models": [
        {"modelId": "a", "promptCaching": {"supportsPromptCaching": True, "maximumCacheCheckpointsPerRequest": 4,
                                           "minimumTokensPerCacheCheckpoint": 4096}},
        {"modelId": "b", "promptCaching": {"supportsPromptCaching": False}},
        {"modelId": "c"}]})
    assert (listed["a"].cache_points, listed["a"].cache_min_tokens) == (4, 4096)
    assert listed["b"].cache_points == listed["c"].cache_points == 0
