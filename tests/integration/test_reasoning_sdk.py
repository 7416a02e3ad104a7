"""Native reasoning under gunicorn with gevent workers, driven by the official anthropic and openai SDKs.

The fake Kiro issues signed reasoningContentEvent frames, refuses `additionalModelRequestFields` the model's
schema does not allow and any reasoning signature it did not issue, as the service does.
"""
from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.kiro.reasoning import sign
from tests.helpers.credentials import KEY

pytestmark = pytest.mark.integration
MODEL = "claude-sonnet-4-6"  # Kiro claude-sonnet-4.6: its schema takes thinking, output_config.effort, max_tokens
THOUGHT = ["Six times seven", " is forty-two."]
GATEWAY_ENV = {"KIRO_USAGE_INTERVAL": "0"}  # the shared gateway's settings (integration/conftest.py)


def sent(fake) -> dict:
    return fake.requests()[-1]["body"]


def test_anthropic_stream_thinking_is_signed_and_goes_back_signed(gw, fake_upstream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]}, {"texts": ["You are welcome."]})
    with anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30) as client:
        ask = [{"role": "user", "content": "6*7?"}]
        with client.messages.stream(model=MODEL, max_tokens=4096, thinking={"type": "adaptive"},
                                    messages=ask) as stream:
            first = stream.get_final_message()
        thinking = first.content[0]
        assert thinking.type == "thinking" and thinking.thinking == "".join(THOUGHT)
        assert thinking.signature == sign("".join(THOUGHT))  # from the signature_delta, as the SDK reads it
        assert sent(fake_upstream)["additionalModelRequestFields"] == {
            "thinking": {"type": "adaptive", "display": "summarized"}, "max_tokens": 4096}
        follow = [*ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": "thanks"}]
        second = client.messages.create(model=MODEL, max_tokens=4096, thinking={"type": "adaptive"},
                                        messages=follow)
    assert second.content[0].text == "You are welcome."
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["reasoningContent"] == {"reasoningText": {"text": "".join(THOUGHT),
                                                               "signature": sign("".join(THOUGHT))}}


def test_anthropic_effort_the_model_does_not_take(gw, fake_upstream):
    with anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0, timeout=30) as client:
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(model=MODEL, max_tokens=1024, extra_body={"output_config": {"effort": "xhigh"}},
                                   messages=[{"role": "user", "content": "hi"}])
    assert "output_config.effort" in info.value.message and "low, medium, high, max" in info.value.message
    assert fake_upstream.stats()["chat_requests"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_openai_reasoning_effort_reaches_kiro_as_output_config(gw, fake_upstream, stream):
    fake_upstream.script({"reasoning": THOUGHT, "texts": ["42"]}, {"texts": ["ok"]})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    ask = [{"role": "user", "content": "6*7?"}]
    result = client.chat.completions.create(model=MODEL, reasoning_effort="high", messages=ask, stream=stream)
    if stream:
        deltas = [chunk.choices[0].delta for chunk in result if chunk.choices]
        reasoning = "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
        details = [x for d in deltas for x in (getattr(d, "reasoning_details", None) or [])]
        content = "".join(d.content or "" for d in deltas)
    else:
        message = result.choices[0].message
        reasoning, details, content = message.reasoning_content, message.reasoning_details, message.content
    assert (reasoning, content) == ("".join(THOUGHT), "42")
    assert [(d["text"], d["signature"]) for d in details] == [("".join(THOUGHT), sign("".join(THOUGHT)))]
    assert sent(fake_upstream)["additionalModelRequestFields"] == {
        "thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "high"}}
    follow = [*ask, {"role": "assistant", "content": content, "reasoning_content": reasoning,
                     "reasoning_details": details}, {"role": "user", "content": "thanks"}]
    assert client.chat.completions.create(model=MODEL, messages=follow).choices[0].message.content == "ok"
    assistant = sent(fake_upstream)["conversationState"]["history"][-1]["assistantResponseMessage"]
    assert assistant["reasoningContent"]["reasoningText"]["signature"] == sign("".join(THOUGHT))


def test_openai_effort_the_model_does_not_take(gw, fake_upstream):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, reasoning_effort="xhigh",
                                       messages=[{"role": "user", "content": "hi"}])
    assert info.value.param == "reasoning_effort" and info.value.code == "unsupported_value"
    assert fake_upstream.stats()["chat_requests"] == 0
