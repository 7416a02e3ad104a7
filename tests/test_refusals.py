"""What Kiro's refusals become, where clients read them by their wording: a context overflow through each API."""
import pytest

from tests.helpers.openai_schema import validate

TOO_LONG = {"status": 400, "json": {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}}
MODEL = "claude-sonnet-4-5"


@pytest.mark.parametrize("path, body, phrase", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "maximum context length"),
    ("/v1/responses", {"input": "hi"}, "maximum context length"),
    ("/v1/messages", {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}, "prompt is too long"),
])
def test_context_overflow_has_the_wording_clients_recognise(client, auth, fake_upstream, path, body, phrase):
    fake_upstream.script(TOO_LONG)
    response = client.post(path, json={"model": MODEL, **body}, headers=auth)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert phrase in error["message"]  # LiteLLM's check: its ContextWindowExceededError, so aider trims history
    assert "Input is too long." in error["message"]  # Kiro's own words kept
    if path.startswith("/v1/messages"):
        assert error["type"] == "invalid_request_error"
    else:
        validate(response.get_json(), "ErrorResponse")
        assert error["code"] == "context_length_exceeded"
        assert "This model's maximum context length is" in error["message"]
