"""Property tests: the Responses request translator, as routes/responses.py chains it.

Any JSON body made of the Responses API's own field names, in any shape, becomes a Kiro body that keeps the
upstream's rules, or is refused with an InvalidRequest (a 400 naming the field), never another exception.
"""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ki2api.errors import InvalidRequest
from ki2api.translate.history import build_payload
from ki2api.translate.responses_request import input_items, parse_conversation, parse_options
from tests.helpers.kiro_request import assert_well_formed

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("type", "role", "content", "text", "name", "call_id", "arguments", "output", "summary",
          "encrypted_content", "image_url", "tools", "namespace", "format", "schema", "effort", "parameters")
VALUES = st.sampled_from(["message", "user", "assistant", "developer", "function_call", "function_call_output",
                          "reasoning", "input_text", "output_text", "function", "namespace", "web_search",
                          "json_schema", "low", "{}", ""])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | VALUES | st.text(max_size=4) | st.just({}),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner,
                                                                                 max_size=4),
                    max_leaves=14)
TOP = st.sampled_from(("input", "instructions", "tools", "tool_choice", "text", "reasoning", "metadata",
                       "max_output_tokens", "store", "stream", "parallel_tool_calls", "temperature"))


def payload(body: dict[str, Any]) -> dict[str, Any]:
    options = parse_options(body)
    return build_payload(parse_conversation(body, input_items(body), options.thinking_budget), "claude-sonnet-4.5")


@PROPERTY
@given(st.dictionaries(TOP, JSON, max_size=6))
def test_any_body_is_a_well_formed_kiro_request_or_a_400_naming_a_field(fields):
    try:
        sent = payload({"model": "claude-sonnet-4-5", **fields})
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.param
        return
    assert_well_formed(sent)


@PROPERTY
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6))
def test_a_list_of_user_messages_keeps_every_text(texts):
    items = [{"role": "user", "content": [{"type": "input_text", "text": t}]} for t in texts]
    sent = payload({"model": "claude-sonnet-4-5", "input": items})
    assert_well_formed(sent)
    assert sent["conversationState"]["currentMessage"]["userInputMessage"]["content"] == "\n".join(texts)
