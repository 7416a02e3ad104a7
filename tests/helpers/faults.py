"""Shared by the fault-injection tests: calling ki2api over raw HTTP, reading SSE, checking errors and health."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from tests.helpers.credentials import KEY
from tests.helpers.anthropic_schema import validate_error as validate_anthropic_error
from tests.helpers.anthropic_schema import validate_event as validate_anthropic_event
from tests.helpers.openai_schema import validate as validate_openai
from tests.helpers.waiting import wait_for

TIMEOUT = 60
OPENAI_BODY = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]}
DEFAULT_ANSWER = "Hello! I am the fake Kiro."


@dataclass
class Reply:
    """One HTTP answer: status, headers, JSON body (whole answers) or SSE events, and whether it ended cleanly."""

    status: int
    headers: dict[str, str]
    body: Any = None
    events: list[tuple[str | None, Any]] | None = None
    clean_end: bool = True


def parse_sse(lines: list[str]) -> list[tuple[str | None, Any]]:
    """(event name, data) pairs; data is parsed JSON, or the raw string ([DONE])."""
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            raw = line[6:]
            events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
            name = None
    return events


def call(gateway, path: str, body: dict[str, Any], stream: bool = False, headers: dict[str, str] | None = None,
         timeout: float = TIMEOUT) -> Reply:
    """POST a JSON body with the test key; read the whole answer, noting whether a stream ended cleanly."""
    payload = {**body, "stream": True} if stream else body
    sent = {"Authorization": f"Bearer {KEY}", **(headers or {})}
    with requests.post(f"{gateway.url}{path}", json=payload, headers=sent, stream=True, timeout=timeout) as r:
        reply = Reply(r.status_code, dict(r.headers))
        if not r.headers.get("Content-Type", "").startswith("text/event-stream"):
            reply.body = r.json()
            return reply
        lines: list[str] = []
        try:
            for line in r.iter_lines(decode_unicode=True):
                lines.append(line)
        except requests.exceptions.ChunkedEncodingError:
            reply.clean_end = False
        reply.events = parse_sse(lines)
        return reply


@dataclass(frozen=True)
class Api:
    """One client API: where it is posted, and how its errors and streams look."""

    name: str
    path: str
    body: dict[str, Any]

    def error_kind(self, reply: Reply) -> str:
        """The error's type (validated against the API's own error schema)."""
        if self.name == "openai":
            validate_openai(reply.body, "ErrorResponse")
            return reply.body["error"]["type"]
        validate_anthropic_error(reply.body)
        return reply.body["error"]["type"]

    def text(self, reply: Reply) -> str:
        """The answer's text, whole or streamed."""
        if reply.events is None:
            if self.name == "openai":
                return reply.body["choices"][0]["message"]["content"]
            return "".join(b.get("text", "") for b in reply.body["content"] if b["type"] == "text")
        if self.name == "openai":
            return "".join(d["choices"][0]["delta"].get("content") or "" for _, d in reply.events
                           if isinstance(d, dict) and d.get("choices"))
        return "".join(d["delta"].get("text", "") for n, d in reply.events if n == "content_block_delta")

    def stream_errors(self, reply: Reply) -> list[dict[str, Any]]:
        """The error events of a stream."""
        if self.name == "openai":
            return [d for _, d in reply.events if isinstance(d, dict) and "error" in d]
        return [d for n, d in reply.events if n == "error"]

    def check_stream_shape(self, reply: Reply) -> None:
        """Every event fits the API's schema; the stream ends cleanly with a stop reason after one error."""
        assert reply.clean_end, "the stream was cut instead of ending cleanly"
        if self.name == "openai":
            for _, data in reply.events:
                if isinstance(data, dict) and "error" not in data:
                    validate_openai(data, "CreateChatCompletionStreamResponse")
            assert reply.events[-1][1] == "[DONE]"
            finishes = [d["choices"][0]["finish_reason"] for _, d in reply.events
                        if isinstance(d, dict) and d.get("choices") and d["choices"][0].get("finish_reason")]
            assert len(finishes) == 1, finishes
            return
        for name, data in reply.events:
            validate_anthropic_event(name, data)
        assert [n for n, _ in reply.events].count("message_stop") == 1
        assert reply.events[-1][0] == "message_stop"
        deltas = [d for n, d in reply.events if n == "message_delta"]
        assert len(deltas) == 1 and deltas[0]["delta"]["stop_reason"]


OPENAI = Api("openai", "/v1/chat/completions", OPENAI_BODY)
ANTHROPIC = Api("anthropic", "/v1/messages", ANTHROPIC_BODY)
APIS = [OPENAI, ANTHROPIC]


def assert_worker_fine(gateway, fake, api: Api = OPENAI, workers: int = 1) -> None:
    """The same worker(s) still answer a normal request, no upstream stream stays open, nothing crashed or restarted."""
    wait_for(lambda: fake.stats()["open_streams"] == 0, what="the upstream streams to close")
    reply = call(gateway, api.path, api.body)
    assert reply.status == 200, reply.body
    assert api.text(reply) == DEFAULT_ANSWER
    log = gateway.log_text()
    assert log.count("Booting worker") == workers, log
    assert "Traceback" not in log, log
    assert "WORKER TIMEOUT" not in log, log
