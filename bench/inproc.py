"""In-process figures: the real Flask app called through WSGI, its upstream replayed from memory (no sockets).

What this isolates is ki2api's own code: request parsing and translation, event-stream decoding, answer
translation and SSE formatting. The app is `create_app(settings)`; only the requests Session's transport is
swapped (a requests adapter that hands back pre-built frame bytes), so everything above it runs as deployed.
"""
from __future__ import annotations

import gc
import json
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder

from tests.fakes.kiro.frames import initial_response_frame, json_frame

from . import procs, streamer
from .procs import KEY

UPSTREAM = "http://replay.invalid"
MODEL_ID = "claude-sonnet-4.5"


class Replay:
    """A urllib3-like raw body that yields the prepared chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, chunk_size: int | None = None, decode_content: bool = True) -> Iterator[bytes]:
        """The chunks, as the network would deliver them."""
        yield from self.chunks

    def close(self) -> None:
        """Nothing to release."""

    def release_conn(self) -> None:
        """Nothing to release."""


class ReplayAdapter(BaseAdapter):
    """A requests transport answering every request with `chunks` (a 200 event stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Hand back the prepared answer."""
        response = requests.Response()
        response.status_code = 200
        response.headers = CaseInsensitiveDict({"Content-Type": "application/vnd.amazon.eventstream"})
        response.raw = Replay(self.chunks)
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        """Nothing to close."""


def answer_chunks(frames: int, frame_bytes: int = 120, per_chunk: int = 1) -> list[bytes]:
    """An upstream answer of `frames` text frames, `per_chunk` frames per network read."""
    body = [initial_response_frame()]
    body += [streamer.text_frame(frame_bytes, MODEL_ID)] * frames
    body += [json_frame("contextUsageEvent", {"contextUsagePercentage": 1.5})]
    return [b"".join(body[i:i + per_chunk]) for i in range(0, len(body), per_chunk)]


class App:
    """ki2api built by create_app, with the replaying transport mounted for the upstream."""

    def __init__(self) -> None:
        from ki2api.app import create_app
        from ki2api.settings import Settings

        workdir = Path(tempfile.mkdtemp(prefix="ki2api-inproc-"))
        token_file = procs.write_token_file(workdir / "token.json", procs.ACCESS, procs.REFRESH, 24 * 3600)
        settings = Settings(api_keys=(KEY,), token_file=str(token_file), api_base=UPSTREAM,
                            refresh_url=f"{UPSTREAM}/refreshToken", oidc_url=f"{UPSTREAM}/token",
                            state_dir=str(workdir / "state"), log_level="WARNING")
        self.app = create_app(settings)
        self.adapter = ReplayAdapter()
        for session in _sessions(self.app.extensions["ki2api"]):
            session.mount(UPSTREAM, self.adapter)

    def call(self, body: bytes) -> int:
        """One POST /v1/chat/completions through WSGI; returns the response body's length."""
        environ = EnvironBuilder(path="/v1/chat/completions", method="POST", data=body,
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
                                 ).get_environ()
        status: list[str] = []
        result = self.app(environ, lambda s, h, e=None: status.append(s))
        try:
            size = sum(len(piece) for piece in result)
        finally:
            getattr(result, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise RuntimeError(f"ki2api answered {status[0]}")
        return size


def _sessions(services: Any) -> list[requests.Session]:
    """Every requests Session the services hold (the client's, the token manager's)."""
    found = []
    for holder in (services.client, services.pool.accounts[0].tokens):
        session = getattr(holder, "session", None)
        if isinstance(session, requests.Session) and session not in found:
            found.append(session)
    return found


def request_body(content: str, stream: bool) -> bytes:
    """An OpenAI request body with one user message."""
    return json.dumps(procs.openai_body(content, stream)).encode()


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls (GC collected before, enabled during, as in production)."""
    gc.collect()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_kib(fn: Callable[[], Any]) -> float:
    """Peak Python heap growth during one call, KiB (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1024


def cpu_per_frame(app: App, frames: int = 20000, per_chunk: int = 1, repeat: int = 5) -> float:
    """Microseconds of ki2api code per upstream frame, streamed: (N + 1 frames - 1 frame) / N (an answer needs one
    frame at least: Kiro's 200 without any is an error)."""
    body = request_body("hi", stream=True)

    def run(n: int) -> float:
        app.adapter.chunks = answer_chunks(n, per_chunk=per_chunk)
        return timed(lambda: app.call(body), repeat)

    return (run(frames + 1) - run(1)) / frames * 1e6


def linear(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares (intercept, slope, worst relative residual) of ys over xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    intercept = mean_y - slope * mean_x
    worst = max(abs(y - (intercept + slope * x)) / y for x, y in zip(xs, ys) if y)
    return intercept, slope, worst


def answer_growth(app: App, sizes: tuple[int, ...] = (10, 1000, 10000)) -> dict[str, Any]:
    """Time and peak heap for answers of each size, streamed and whole."""
    rows = {}
    for stream in (True, False):
        body = request_body("hi", stream)
        for n in sizes:
            app.adapter.chunks = answer_chunks(n)
            repeat = max(3, min(50, 20000 // max(n, 1)))
            rows[f"{'stream' if stream else 'whole'}:{n}"] = {
                "ms": timed(lambda: app.call(body), repeat) * 1000, "peak_kib": peak_kib(lambda: app.call(body))}
    return rows


def prompt_growth(app: App, sizes: tuple[int, ...] = (1024, 100 * 1024, 1024 * 1024)) -> dict[str, Any]:
    """Time and peak heap for one short answer to prompts of each size (request translation included)."""
    app.adapter.chunks = answer_chunks(4)
    rows = {}
    for size in sizes:
        body = request_body(procs.prose(size), stream=False)
        repeat = max(3, min(50, 2_000_000 // size))
        rows[str(size)] = {"ms": timed(lambda: app.call(body), repeat) * 1000,
                           "peak_kib": peak_kib(lambda: app.call(body))}
    return rows


def main() -> None:
    """`python -m bench.inproc [--frames N] [--repeat R]`: the in-process figures of this tree, as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--growth", action="store_true", help="also answers of 10/1,000/10,000 frames and "
                        "prompts of 1 KB/100 KB/1 MB")
    args = parser.parse_args()
    app = App()
    result: dict[str, Any] = {
        "us_per_frame": cpu_per_frame(app, args.frames, repeat=args.repeat),
        "us_per_frame_64_per_read": cpu_per_frame(app, args.frames, per_chunk=64, repeat=args.repeat)}
    if args.growth:
        result.update(answers=answer_growth(app), prompts=prompt_growth(app))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
