"""`python -m bench.experiments.changes [--rounds N]`: each speed change that mattered, measured both ways in one process.

Every row puts back the code a change replaced (the library default, or the earlier module read from git
history) next to the code as it is now, and times both on the same input, alternating A and B for
`--rounds` rounds so drift of the machine falls on both sides alike. The figures are medians; docs/performance.md
("Before and after") quotes them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import requests

from ki2api.upstream.session import UpstreamSession
from tests.helpers.fixtures import capture_stream

from .. import inproc, procs


def old_module(rev: str, path: str, name: str) -> types.ModuleType:
    """The module at `path` as it was at git revision `rev` (it must import nothing of ki2api's own)."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=procs.REPO, capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


@contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """`target.name = value` for the duration."""
    saved = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, saved)


def ab(before: Callable[[], float], after: Callable[[], float], rounds: int) -> dict[str, float]:
    """Median of each side over alternating rounds, and after / before."""
    a, b = [], []
    for _ in range(rounds):
        a.append(before())
        b.append(after())
    result = {"before": statistics.median(a), "after": statistics.median(b)}
    result["ratio"] = result["after"] / result["before"]
    return result


def per_frame(app: inproc.App, frames: int, per_chunk: int = 1) -> Callable[[], float]:
    """In-process µs of ki2api code per upstream frame, streamed (see bench/inproc.py)."""
    return lambda: inproc.cpu_per_frame(app, frames, per_chunk=per_chunk, repeat=3)


def json_dumps(data: Any) -> str:
    """What sse.dumps was before orjson (ki2api 920834e, ki2api/sse.py)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_loads(payload: bytes) -> Any:
    """What the frame payloads were parsed with before orjson."""
    return json.loads(payload.decode("utf-8"))


def sse_encoding(app: inproc.App, frames: int, rounds: int) -> dict[str, float]:
    """orjson.dumps vs json.dumps for each SSE chunk: µs per frame, in-process."""
    from ki2api.web import sse

    def before() -> float:
        with patched(sse, "dumps", json_dumps):
            return per_frame(app, frames)()
    return ab(before, per_frame(app, frames), rounds)


def payload_parsing(app: inproc.App, frames: int, rounds: int) -> dict[str, float]:
    """orjson.loads vs json.loads for each frame's payload: µs per frame, in-process."""
    from ki2api.upstream import events

    def before() -> float:
        with patched(events, "_loads", json_loads):
            return per_frame(app, frames)()
    return ab(before, per_frame(app, frames), rounds)


def header_cache(app: inproc.App, frames: int, rounds: int) -> dict[str, float]:
    """Header blocks parsed once per distinct block vs once per frame: µs per frame, in-process."""
    from ki2api.upstream import eventstream

    def before() -> float:
        with patched(eventstream, "_headers", eventstream.parse_headers):
            return per_frame(app, frames)()
    return ab(before, per_frame(app, frames), rounds)


def _decode_all(decoder_class: type, chunks: list[bytes]) -> int:
    decoder = decoder_class()
    count = sum(len(decoder.feed(chunk)) for chunk in chunks)
    decoder.finish()
    return count


def decoder_bursts(frames: int, rounds: int) -> dict[str, float]:
    """The decoder fed bursts of 64 frames per read: buffer cut once per feed (now) vs once per frame (920834e).
    µs per frame, decoder alone."""
    from ki2api.upstream import eventstream

    old = old_module("920834e", "ki2api/upstream/eventstream.py", "ki2api_920834e_eventstream")
    chunks = inproc.answer_chunks(frames, per_chunk=64)

    def timed(decoder_class: type) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            _decode_all(decoder_class, chunks)
            return (time.perf_counter() - start) / frames * 1e6
        return run
    return ab(timed(old.EventStreamDecoder), timed(eventstream.EventStreamDecoder), rounds)


def _captured_pieces() -> list[str]:
    """The text pieces of the three captured streamed answers, in order."""
    from ki2api.upstream.events import TextDelta, iter_events

    pieces = []
    for name in ("06", "16", "14"):
        data = capture_stream(name)
        pieces += [event.text for event in iter_events([data]) if isinstance(event, TextDelta)]
    return pieces


def output_counter(rounds: int, repeat: int = 200) -> dict[str, float]:
    """The output-token estimate over streamed pieces: µs per piece, regex per piece (ef9602a) vs batched now.
    The pieces are the captured answers' own, repeated so the batches fill as in a long answer."""
    from ki2api.translate import usage

    old = old_module("ef9602a", "ki2api/translate/usage.py", "ki2api_ef9602a_usage")
    pieces = _captured_pieces() * repeat

    def timed(counter_class: type) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            counter = counter_class()
            for piece in pieces:
                counter.add(piece)
            assert counter.tokens > 0
            return (time.perf_counter() - start) / len(pieces) * 1e6
        return run
    return ab(timed(old.OutputCounter), timed(usage.OutputCounter), rounds)


class _UsualPost:
    """post_stream the way it was before: through requests' Session.post and its per-call merging."""

    def post_stream(self, url: str, data: bytes, headers: dict[str, str], timeout: Any) -> requests.Response:
        return self.post(url, data=data, headers=headers, stream=True, timeout=timeout)  # type: ignore[attr-defined]


class _PlainSession(_UsualPost, requests.Session):
    """requests.Session as it comes: the environment read on every call."""


class _CachedEnvironmentSession(_UsualPost, UpstreamSession):
    """UpstreamSession's environment cache, with calls still prepared by Session.post."""


def _short_requests(app: inproc.App, before: requests.Session, after: requests.Session, rounds: int,
                    repeat: int) -> dict[str, float]:
    """µs per non-streamed short answer, in-process, with the client's session swapped for `before`/`after`."""
    services = app.app.extensions["ki2api"]
    for session in (before, after):
        session.adapters = services.client.session.adapters  # the same transport, pools and replay
    app.adapter.chunks = inproc.answer_chunks(4)
    body = inproc.request_body("hello", stream=False)

    def timed(session: requests.Session) -> Callable[[], float]:
        def run() -> float:
            with patched(services.client, "session", session):
                return inproc.timed(lambda: app.call(body), repeat) * 1e6
        return run
    return ab(timed(before), timed(after), rounds)


def upstream_session(app: inproc.App, rounds: int, repeat: int = 300) -> dict[str, float]:
    """requests.Session (environment read per call) vs UpstreamSession (read once per origin), both calling
    Session.post. µs per request."""
    return _short_requests(app, _PlainSession(), _CachedEnvironmentSession(), rounds, repeat)


def prepared_call(app: inproc.App, rounds: int, repeat: int = 300) -> dict[str, float]:
    """The chat call through Session.post (cookies, netrc, hooks, URL and headers merged per call) vs
    UpstreamSession.post_stream (prepared in one step). µs per request."""
    return _short_requests(app, _CachedEnvironmentSession(), UpstreamSession(), rounds, repeat)


ROWS = ("sse_encoding", "payload_parsing", "header_cache", "decoder_bursts", "output_counter", "upstream_session",
        "prepared_call")


def main() -> None:
    """Run every comparison and print them as JSON (µs; ratio = after / before)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=5000)
    args = parser.parse_args()
    app = inproc.App()
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "sse_encoding": lambda: sse_encoding(app, args.frames, args.rounds),
        "payload_parsing": lambda: payload_parsing(app, args.frames, args.rounds),
        "header_cache": lambda: header_cache(app, args.frames, args.rounds),
        "decoder_bursts": lambda: decoder_bursts(args.frames * 4, args.rounds),
        "output_counter": lambda: output_counter(args.rounds),
        "upstream_session": lambda: upstream_session(app, args.rounds),
        "prepared_call": lambda: prepared_call(app, args.rounds),
    }
    result: dict[str, Any] = {}
    for name in ROWS:
        result[name] = runs[name]()
        print(f"{name}: {result[name]['before']:.2f} -> {result[name]['after']:.2f} us "
              f"(x{result[name]['ratio']:.2f})", file=sys.stderr, flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
