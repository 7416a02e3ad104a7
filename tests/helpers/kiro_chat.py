"""Chat requests sent straight to the fake Kiro, as ki2api would send them (for the fake's own tests)."""
from __future__ import annotations

import json

import requests

from tests.fakes.kiro.process import FakeKiro

ACCESS = "aoaAAAAAfake-test-access"
REFRESH = "aorAAAAAfake-test-refresh"
BODY = {"conversationState": {"conversationId": "c1", "chatTriggerType": "MANUAL", "currentMessage": {
    "userInputMessage": {"content": "hi", "modelId": "claude-haiku-4.5", "origin": "AI_EDITOR"}}, "history": []}}


def chat(fake: FakeKiro, token: str = ACCESS, body: object = BODY, **kwargs) -> requests.Response:
    """POST /generateAssistantResponse with `token`; `body` as JSON unless already bytes or str."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    kwargs.setdefault("timeout", 10)
    return requests.post(f"{fake.url}/generateAssistantResponse", data=data, headers=headers, **kwargs)
