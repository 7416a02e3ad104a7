from hypothesis import given, settings
from hypothesis import strategies as st

from ki2api.translate.answer import Answer, ReasoningPart, TextPart, ToolStart
from ki2api.translate.history import Conversation, Turn, build_payload
from ki2api.translate.thinking import ThinkingSplitter, thinking_prefix
from ki2api.upstream.events import TextDelta, ToolUseDelta


def split(chunks):
    """Run the splitter over chunks; merge consecutive pieces of one kind."""
    splitter, pieces = ThinkingSplitter(), []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    pieces += splitter.flush()
    merged = []
    for kind, text in pieces:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def test_prefix_is_clamped():
    assert thinking_prefix(4000) == ("<thinking_mode>enabled</thinking_mode>"
                                     "<max_thinking_length>4000</max_thinking_length>")
    assert "<max_thinking_length>1024<" in thinking_prefix(10)
    assert "<max_thinking_length>24576<" in thinking_prefix(10**6)


def test_a_leading_block_is_reasoning_and_the_rest_is_text():
    assert split(["<thinking>\nPlan: add.\n</thinking>\n\n2 + 2 = 4"]) == [
        ("reasoning", "Plan: add.\n"), ("text", "2 + 2 = 4")]


def test_quoted_or_unterminated_closing_tags_do_not_end_the_block():
    text = "<thinking>\nThe tag `</thinking>` and \"</thinking>\" and </thinking>x.</thinking>\n\nDone"
    assert split([text]) == [("reasoning", "The tag `</thinking>` and \"</thinking>\" and </thinking>x."),
                             ("text", "Done")]


def test_a_block_ending_the_stream_or_before_a_tool_closes():
    assert split(["<thinking>only thoughts</thinking>\n"]) == [("reasoning", "only thoughts")]
    assert split(["<thinking>cut off"]) == [("reasoning", "cut off")]


def test_tags_not_at_the_start_are_plain_text():
    assert split(["Answer: use <thinking>x</thinking>\n\n tags"]) == [
        ("text", "Answer: use <thinking>x</thinking>\n\n tags")]
    assert split(["<thin"]) == [("text", "<thin")]
    assert split(["Hello"]) == [("text", "Hello")]


def test_nothing_but_a_possible_tag_is_held_back():
    splitter = ThinkingSplitter()
    assert splitter.feed("<thi") == []
    assert splitter.feed("nking>\nabc</thi") == [("reasoning", "abc")]
    assert splitter.feed("nking>") == []
    assert splitter.feed("\n\nHi") == [("text", "Hi")]
    plain = ThinkingSplitter()
    assert plain.feed("Hi") == [("text", "Hi")]
    assert plain.feed(" there <thinking>") == [("text", " there <thinking>")]


DOC = "  \n<thinking>\nstep `</thinking>` one\nstep two</thinking>\n\nFinal answer </thinking>\n\n end."


@settings(max_examples=300)
@given(st.lists(st.integers(min_value=0, max_value=len(DOC)), max_size=8))
def test_any_chunking_gives_the_same_split(cuts):
    points = sorted(set(cuts))
    chunks = [DOC[a:b] for a, b in zip([0] + points, points + [len(DOC)])]
    assert split(chunks) == [("reasoning", "step `</thinking>` one\nstep two"),
                             ("text", "Final answer </thinking>\n\n end.")]


def test_answer_with_thinking_splits_text_and_keeps_stops_for_the_text():
    answer = Answer(10, 200_000, stops=["STOP"], thinking=True)
    events = [TextDelta("<thinking>\nI could say STOP"), TextDelta(" here.</thinking>\n\nHi STOP now")]
    parts = list(answer.parts(events))
    assert "".join(p.text for p in parts if isinstance(p, ReasoningPart)) == "I could say STOP here."
    assert "".join(p.text for p in parts if isinstance(p, TextPart)) == "Hi "
    assert answer.stop_reason == "stop_sequence"


def test_answer_without_thinking_leaves_tags_in_the_text():
    parts = list(Answer(10, 200_000).parts([TextDelta("<thinking>x</thinking>\n\ny")]))
    assert parts == [TextPart("<thinking>x</thinking>\n\ny")]


def test_reasoning_before_a_tool_call_is_released_in_order():
    answer = Answer(10, 200_000, thinking=True)
    events = [TextDelta("<thinking>use the tool</thinking>"), ToolUseDelta("t1", "Read", ""),
              ToolUseDelta("t1", "Read", "{}", stop=True)]
    parts = list(answer.parts(events))
    assert parts[0] == ReasoningPart("use the tool")
    assert isinstance(parts[1], ToolStart)
    assert answer.stop_reason == "tool_use"


def test_history_reasoning_is_reserialised_and_the_prefix_leads_the_system():
    conv = Conversation("be brief", [Turn("user", "q"), Turn("assistant", "4", reasoning="2+2"),
                                     Turn("user", "again")], thinking_budget=2048)
    history = build_payload(conv, "m")["conversationState"]["history"]
    assert history[0]["userInputMessage"]["content"] == thinking_prefix(2048) + "\nbe brief"
    assert history[3]["assistantResponseMessage"]["content"] == "<thinking>2+2</thinking>\n\n4"
    bare = build_payload(Conversation("", [Turn("user", "q")], thinking_budget=2048), "m")["conversationState"]
    assert bare["history"][0]["userInputMessage"]["content"] == thinking_prefix(2048)
