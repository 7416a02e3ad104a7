"""Answer parts -> an OpenAI Responses `response` object, or the stream of `response.*` events.

Output items follow the answer: a `reasoning` item for reasoning (its text as the summary, and whole in
`encrypted_content`, see reasoning_items.py), a `message` item with one `output_text` part for text, one
`function_call` item per tool call; each is added when its first part arrives and done when another begins.
A web search the model made (translate/search_loop.py) is a `web_search_call` item, and each of its result URLs
the answer's text cites a `url_citation` annotation of that text.
Every streamed event carries a `sequence_number` counting from 0.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..errors import ApiError, RateLimited
from .answer import MAX_TOKENS, Answer, Part, ReasoningPart, TextPart, ToolArgs, ToolEnd, ToolStart, Usage
from .reasoning_items import encode_reasoning
from .search_loop import SearchCall, SearchDone
from .usage import estimate_tokens
from .websearch import SearchResult, url_citations

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    """A fresh OpenAI-style id: `resp`, `msg`, `fc`, `rs`..."""
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_dict(usage: Usage, reasoning_text: str = "") -> dict[str, Any]:
    """The Responses usage object; reasoning tokens are estimated from the reasoning text (Kiro counts none)."""
    reasoning = min(usage.output_tokens, estimate_tokens(reasoning_text))
    body = {"input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.input_tokens + usage.output_tokens}
    if usage.credits is not None:  # what Kiro charged, when it said (never invented)
        body["kiro_credits"] = usage.credits
    return body


@dataclass
class ResponseState:
    """One response being built: its id, what the request asked (echoed), and the output items so far."""

    model: str
    echo: dict[str, Any]
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    output: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # flattened name -> (namespace, name)
    _open: dict[str, Any] | None = None
    _signature: str | None = None
    _sources: list[SearchResult] = field(default_factory=list)  # every search result so far, for citations
    _seq: int = 0

    def response(self, status: str, answer: Answer | None = None, error: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        """The response object in its current state (`status`: in_progress, completed, incomplete, failed)."""
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        body = {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "completed_at": int(time.time()) if status == "completed" else None,
                "error": error, "incomplete_details": incomplete, "model": self.model,
                "output": [_copy(item) for item in self.output], "tools": self.tools,
                **self.echo, "service_tier": "default"}
        if answer is not None:
            body["usage"] = usage_dict(answer.usage, self.reasoning_text())
        return body

    def reasoning_text(self) -> str:
        """All reasoning of the answer so far."""
        return "".join(s["text"] for item in self.output if item["type"] == "reasoning" for s in item["summary"])

    # -- building items from parts ------------------------------------------------------------------------------

    def part(self, part: Part) -> list[Event]:
        """The events one answer part becomes, adding and finishing output items as needed."""
        if isinstance(part, TextPart):
            events = self._ensure("message")
            item = self._open
            item["content"][0]["text"] += part.text
            return events + [self._event("response.output_text.delta", item_id=item["id"],
                                         output_index=len(self.output) - 1, content_index=0, delta=part.text,
                                         logprobs=[])]
        if isinstance(part, ReasoningPart):
            events = self._ensure("reasoning")
            self._signature = part.signature or self._signature
            if not part.text:
                return events
            self._open["summary"][0]["text"] += part.text
            return events + [self._event("response.reasoning_summary_text.delta", item_id=self._open["id"],
                                         output_index=len(self.output) - 1, summary_index=0, delta=part.text)]
        if isinstance(part, ToolStart):
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress", "call_id": part.tool_use_id,
                    "name": part.name, "arguments": ""}
            if part.name in self.namespaces:
                item["namespace"], item["name"] = self.namespaces[part.name]
            return self._close() + self._add(item)
        if isinstance(part, ToolArgs) and self._open is not None and self._open["type"] == "function_call":
            self._open["arguments"] += part.fragment
            return [self._event("response.function_call_arguments.delta", item_id=self._open["id"],
                                output_index=len(self.output) - 1, delta=part.fragment)]
        if isinstance(part, ToolEnd):
            return self._close()
        if isinstance(part, SearchCall):
            query = part.query if isinstance(part.query, str) else ""
            item = {"id": new_id("ws"), "type": "web_search_call", "status": "in_progress",
                    "action": {"type": "search", "query": query}}
            events = self._close() + self._add(item)
            where = {"item_id": item["id"], "output_index": len(self.output) - 1}
            return events + [self._event("response.web_search_call.in_progress", **where),
                             self._event("response.web_search_call.searching", **where)]
        if isinstance(part, SearchDone) and self._open is not None and self._open["type"] == "web_search_call":
            item = self._open
            item["status"] = "failed" if part.error else "completed"
            item["action"]["sources"] = [{"type": "url", "url": r.url} for r in part.results]
            self._sources += part.results
            return [self._event("response.web_search_call.completed", item_id=item["id"],
                                output_index=len(self.output) - 1)] + self._close()
        return []

    def finish(self, answer: Answer) -> list[Event]:
        """Finish the open item, then `response.completed` (or `response.incomplete` when cut at the cap)."""
        events = self._close()
        status = "incomplete" if answer.stop_reason == MAX_TOKENS else "completed"
        return events + [self._event(f"response.{status}", response=self.response(status, answer))]

    def fail(self, error: ApiError, answer: Answer) -> list[Event]:
        """After the first byte: the open item left incomplete, then `response.failed` with the error."""
        if self._open is not None:
            self._open["status"] = "incomplete"
            self._open = None
        code = "rate_limit_exceeded" if isinstance(error, RateLimited) else "server_error"
        body = self.response("failed", answer, {"code": code, "message": error.message})
        return [self._event("response.failed", response=body)]

    def start(self) -> list[Event]:
        """`response.created` and `response.in_progress`."""
        return [self._event("response.created", response=self.response("in_progress")),
                self._event("response.in_progress", response=self.response("in_progress"))]

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _ensure(self, kind: str) -> list[Event]:
        if self._open is not None and self._open["type"] == kind:
            return []
        if kind == "message":
            item = {"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
            events = self._close() + self._add(item)
            item["content"].append({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            return events + [self._event("response.content_part.added", item_id=item["id"],
                                         output_index=len(self.output) - 1, content_index=0,
                                         part={"type": "output_text", "text": "", "annotations": [],
                                               "logprobs": []})]
        item = {"id": new_id("rs"), "type": "reasoning", "summary": [], "encrypted_content": None}
        events = self._close() + self._add(item)
        item["summary"].append({"type": "summary_text", "text": ""})
        return events + [self._event("response.reasoning_summary_part.added", item_id=item["id"],
                                     output_index=len(self.output) - 1, summary_index=0,
                                     part={"type": "summary_text", "text": ""})]

    def _add(self, item: dict[str, Any]) -> list[Event]:
        self.output.append(item)
        self._open = item
        return [self._event("response.output_item.added", output_index=len(self.output) - 1, item=_copy(item))]

    def _close(self) -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        index, events = len(self.output) - 1, []
        if item["type"] == "message":
            part = item["content"][0]
            events += self._cite(item, index)
            events += [self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                   content_index=0, text=part["text"], logprobs=[]),
                       self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                   content_index=0, part=dict(part))]
        elif item["type"] == "reasoning":
            summary = item["summary"][0]
            item["encrypted_content"] = encode_reasoning(summary["text"], self._signature)
            self._signature = None
            events += [self._event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                                   summary_index=0, text=summary["text"]),
                       self._event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                                   summary_index=0, part=dict(summary))]
        elif item["type"] == "function_call":
            item["arguments"] = item["arguments"] or "{}"
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=item["arguments"]))
        if "status" in item and item["type"] != "web_search_call":  # a search's status is its outcome
            item["status"] = "completed"
        return events + [self._event("response.output_item.done", output_index=index, item=_copy(item))]

    def _cite(self, item: dict[str, Any], index: int) -> list[Event]:
        """A message's `url_citation` annotations: each search result URL its text cites."""
        part = item["content"][0]
        sources = list({r.url: r for r in self._sources}.values())  # a URL two searches found, cited once
        found = [{"type": "url_citation", **c["url_citation"]} for c in url_citations(part["text"], sources)]
        part["annotations"] = found
        return [self._event("response.output_text.annotation.added", item_id=item["id"], output_index=index,
                            content_index=0, annotation_index=n, annotation=dict(a)) for n, a in enumerate(found)]


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    """A snapshot of an item as it is now (the stream's events must not change as the item grows)."""
    out = dict(item)
    for key in ("content", "summary"):
        if key in out:
            out[key] = [dict(p) for p in out[key]]
    if "action" in out:
        out["action"] = dict(out["action"])
    return out


def stream_events(state: ResponseState, answer: Answer, events: Iterable[object]) -> Iterator[Event]:
    """Every event of a streamed response: start, each part's events as it arrives, the end."""
    yield from state.start()
    for part in answer.parts(events):
        yield from state.part(part)
    yield from state.finish(answer)


def collect_response(state: ResponseState, answer: Answer, events: Iterable[object]) -> dict[str, Any]:
    """Consume the whole answer and return the final response object."""
    for part in answer.parts(events):
        state.part(part)
    return state.finish(answer)[-1]["response"]
