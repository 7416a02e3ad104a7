"""Whole (not streamed) answers that take long: the 200 starts with whitespace while Kiro works, then the JSON.

Proxies and clients cut a connection that stays silent for 60-125 s, and a long answer can take minutes. An
answer ready within STREAM_KEEPALIVE goes out as usual (its real status, Content-Length, the credits header);
a slower one gets a 200 whose body starts with a space, one more each interval, then the JSON: leading
whitespace is valid JSON (RFC 8259), and the official SDKs parse such a body (tests/integration). A failure
after that point can no longer change the status: the body is then the API's error object.

The answer is collected in a plain greenlet (no gevent hub, no queue, no thread): it runs the translator
over the events and, at each interval (a silence of Kiro's, or the interval elapsed while Kiro talks),
switches back to the request, which writes a space and switches in again. Nothing is handed over per event.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

from flask import Response, stream_with_context
from greenlet import greenlet

from ..errors import ApiError
from ..observability.credits import note_credits
from ..observability.requestlog import note
from ..translate.answer import Usage
from ..upstream.client import UpstreamStream
from ..upstream.events import SILENCE, Event
from .sse import PROXY_HEADERS, dumps, in_band_error

PAD = " "

Collect = Callable[[Iterable[Event]], dict[str, Any]]


def whole_answer(upstream: UpstreamStream, collect: Collect, interval: float, usage: Usage,
                 envelope: Callable[[ApiError], dict[str, Any]],
                 finish: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | Response:
    """`collect` over the upstream's events: the result when it came within `interval` seconds (the upstream
    closed, the caller makes the response), else a padded 200 response that ends with it. A late result's
    `usage` is noted on the request's log line and `finish` called with it before it is written; `envelope`
    renders a late failure."""
    ticker = _Ticker(upstream.events(interval), interval)
    runner = greenlet(lambda: collect(ticker))
    try:
        result = runner.switch()
    except BaseException:
        upstream.close()
        raise
    if result is not None:
        upstream.close()
        return result

    def stop() -> None:
        if not runner.dead:
            runner.throw()  # GreenletExit where it waits: the events' own `finally` closes the upstream
        upstream.close()

    def done(result: dict[str, Any]) -> None:
        note(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens)
        note_credits(usage)
        if finish is not None:
            finish(result)

    body = _padded(runner, done, envelope, stop)
    response = Response(stream_with_context(body), mimetype="application/json", headers=PROXY_HEADERS)
    response.call_on_close(stop)  # also when the body is never iterated
    return response


class _Ticker:
    """The events, switching to the request greenlet at each SILENCE and after each `interval` of talk."""

    def __init__(self, events: Iterator[Event], interval: float) -> None:
        self.events, self.interval = events, interval

    def __iter__(self) -> Iterator[Event]:
        here = greenlet.getcurrent()
        due = time.monotonic() + self.interval
        for event in self.events:
            if event is SILENCE or time.monotonic() >= due:
                here.parent.switch(None)
                due = time.monotonic() + self.interval
                if event is SILENCE:
                    continue
            yield event


def _padded(runner: greenlet, finish: Callable[[dict[str, Any]], None],
            envelope: Callable[[ApiError], dict[str, Any]], stop: Callable[[], None]) -> Iterator[str]:
    """A space now and one per interval, then the result's JSON (or, if it failed, the error object)."""
    try:
        yield PAD
        while True:
            result = runner.switch()
            if result is None:
                yield PAD
                continue
            finish(result)
            yield dumps(result)
            return
    except Exception as exc:  # the 200 is already out: the body tells the failure
        yield dumps(envelope(in_band_error(exc)))
    finally:
        stop()
