"""The web search loop: the model's answer, its searches run against Kiro, and its next answer, as one stream.

`SearchLoop` stands where an UpstreamStream stands (routes/anthropic.py reads `events()`, calls `abort()` and
`close()`), starting from the first call the route opened. Its events are the calls' events in turn, except
the calls of the search tool (translate/search_loop.py): those are held until the call ends, then each becomes
a SearchCall, the search runs (upstream/websearch.py, within WEB_SEARCH_TIMEOUT) and a SearchDone follows,
then a CallEnd and the next call's events. Calls of the client's own tools are held too and come after the
searches; with any, the loop stops there and the client runs them (stop_reason `tool_use`). A search that
fails is a SearchDone with an error code, which the model is told of and answers without: never a hang.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterator

from ..errors import ApiError, RateLimited
from ..translate import search_loop as loop
from ..translate.answer import prompt_estimate
from ..translate.websearch import SearchResult, server_tool_id
from .client import UpstreamStream
from .events import SILENCE, Event, ReasoningDelta, TextDelta, ToolUseDelta

log = logging.getLogger(__name__)


@dataclass
class _Turn:
    """What one call asked for: its search calls (Kiro's id -> input pieces), the client's tool calls, its text
    and its native reasoning (text, signature, redacted content)."""

    calls: dict[str, list[str]] = field(default_factory=dict)
    held: list[ToolUseDelta] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    thought: list[str] = field(default_factory=list)
    signature: str | None = None
    redacted: str | None = None


class SearchLoop:
    """The upstream calls and searches of one answer that may search the web."""

    def __init__(self, first: UpstreamStream, payload: dict, options: loop.SearchOptions,
                 send: Callable[[dict], UpstreamStream], search: Callable[[str], list[SearchResult]]) -> None:
        self.current, self.payload, self.options = first, payload, options
        self.send, self.search = send, search
        self.status = first.status
        self.searches = 0  # run or refused for max_uses: what max_uses counts
        self.abandoned = False

    def events(self, keepalive: float | None = None) -> Iterator[Event]:
        """Every call's events and the searches between them, until the model stops searching."""
        try:
            refused_rounds = 0
            while True:
                turn = yield from self._read(keepalive)
                if self.abandoned or not turn.calls:
                    yield from turn.held
                    return
                done: list[loop.SearchDone] = []
                for kiro_id, pieces in turn.calls.items():
                    call = loop.SearchCall(kiro_id, server_tool_id(), loop.parse_query("".join(pieces)))
                    yield call
                    yield from self._searching(call, keepalive, done)
                    yield done[-1]
                yield from turn.held
                refused_rounds = refused_rounds + 1 if all(d.error == loop.MAX_USES for d in done) else 0
                if turn.held or self.abandoned or refused_rounds > 1:  # the client's tools, or a model that won't stop
                    return
                self.payload = loop.continued(
                    self.payload, "".join(turn.said), [loop.kiro_tool_use(d.call, self.options.name) for d in done],
                    [loop.kiro_tool_result(d) for d in done],
                    loop.reasoning_content("".join(turn.thought), turn.signature, turn.redacted))
                yield loop.CallEnd(prompt_estimate(self.payload))
                if self.abandoned:
                    return
                self.current = self.send(self.payload)
        finally:
            self.current.close()

    def _read(self, keepalive: float | None) -> Generator[Event, None, _Turn]:
        """The current call's events, but its tool calls: the search tool's are gathered, the client's held."""
        turn = _Turn()
        for event in self.current.events(keepalive):
            if isinstance(event, ToolUseDelta):
                if event.name == self.options.name:
                    turn.calls.setdefault(event.tool_use_id, []).append(event.input)
                else:
                    turn.held.append(event)
                continue
            if isinstance(event, TextDelta):
                turn.said.append(event.text)
            elif isinstance(event, ReasoningDelta):
                turn.thought.append(event.text)
                turn.signature, turn.redacted = event.signature or turn.signature, event.redacted or turn.redacted
            yield event
        return turn

    def _searching(self, call: loop.SearchCall, keepalive: float | None, done: list[loop.SearchDone]
                   ) -> Iterator[Event]:
        """Run the search onto `done`; with `keepalive`, SILENCE after each interval it takes (a whole answer's
        padding goes on meanwhile), as the calls' own events do."""
        if keepalive is None:
            done.append(self._run(call))
            return
        box: queue.Queue[loop.SearchDone | BaseException] = queue.Queue(maxsize=1)

        def run() -> None:
            try:
                box.put(self._run(call))
            except BaseException as exc:  # handed to the reader, which raises it
                box.put(exc)

        threading.Thread(target=run, name="web-search", daemon=True).start()
        while True:
            try:
                outcome = box.get(timeout=keepalive)
            except queue.Empty:
                yield SILENCE
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            done.append(outcome)
            return

    def _run(self, call: loop.SearchCall) -> loop.SearchDone:
        """The search's results (filtered by the domain options), or why there are none."""
        error = loop.query_error(call.query)
        if error is None and self.searches >= self.options.max_uses:
            error = loop.MAX_USES
        if error is not None:
            return loop.SearchDone(call, error=error)
        self.searches += 1
        try:
            results = self.search(call.query)
        except RateLimited as exc:
            log.info("web search refused: %s", exc.message)
            return loop.SearchDone(call, error=loop.TOO_MANY)
        except ApiError as exc:
            log.info("web search failed: %s", exc.message)
            return loop.SearchDone(call, error=loop.UNAVAILABLE)
        return loop.SearchDone(call, loop.filtered(results, self.options))

    def abort(self) -> None:
        """The client went away: stop the call being read; no further search or call follows."""
        self.abandoned = True
        self.current.abort()

    def close(self) -> None:
        """Close the call being read (idempotent)."""
        self.current.close()
