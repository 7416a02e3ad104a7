"""The benchmark scenarios: each runs the same load against ki2api and straight against the upstream ("direct").

Sizes come from a Plan (full or quick). Every scenario returns plain dicts; report.py turns them into figures.
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests

from . import inproc, procs, streams, wrk


@dataclass(frozen=True)
class Plan:
    """How big each scenario is."""

    wrk_seconds: float
    hold_streams: int
    hold_seconds: int
    flow_streams: int          # concurrent streams for the per-chunk delay and TTFB figures
    flow_stream_seconds: int
    flow_pace: float
    cpu_streams: int
    cpu_frames: int
    scaling: tuple[int, ...]
    growth_repeat: int
    inproc_frames: int = 20000  # frames per in-process answer for the CPU-per-frame figure
    answer_sizes: tuple[int, ...] = (10, 1000, 10000)
    prompt_sizes: tuple[int, ...] = (1024, 100 * 1024, 1024 * 1024)


FULL = Plan(wrk_seconds=8, hold_streams=2000, hold_seconds=30, flow_streams=1000, flow_stream_seconds=20,
            flow_pace=0.5, cpu_streams=100, cpu_frames=600, scaling=(2, 4), growth_repeat=5)
QUICK = Plan(wrk_seconds=1, hold_streams=200, hold_seconds=2, flow_streams=100, flow_stream_seconds=1,
             flow_pace=0.1, cpu_streams=50, cpu_frames=50, scaling=(2,), growth_repeat=2,
             inproc_frames=5000, answer_sizes=(10, 1000), prompt_sizes=(1024, 100 * 1024))
# The smallest plan that still produces every figure: what tests/test_bench.py runs (structure, not speed).
SMOKE = Plan(wrk_seconds=1, hold_streams=40, hold_seconds=2, flow_streams=20, flow_stream_seconds=1,
             flow_pace=0.1, cpu_streams=10, cpu_frames=50, scaling=(2, 4), growth_repeat=1,
             inproc_frames=500, answer_sizes=(10, 100), prompt_sizes=(1024, 10 * 1024))
RAMP = 400.0  # streams opened per second in the hold test
SAMPLE_EVERY = 0.25


def spec(frames: int, pace: float = 0.0, stamp: bool = True, size: int = 120, first: float = 0.0) -> str:
    """The bench streamer's answer spec (the first line of the prompt)."""
    return json.dumps({"n": frames, "b": size, "pace": pace, "ts": stamp, "first": first}, separators=(",", ":"))


def request_path(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
                 cpus: dict[str, set[int] | None], floors: bool = True) -> dict[str, Any]:
    """Non-streamed short answers: latency at concurrency 1, requests per second at 50; for ki2api and for the
    upstream itself ("direct"). With the floors: also for bench/passthrough.py in front of it ("passthrough":
    gunicorn, Flask and requests forwarding the answer untouched, the floor of the stack ki2api is built on), for
    the same Flask app answering without an upstream call ("flask_only": the framework's ceiling), forwarding over
    a bare socket ("socket": the floor of any HTTP client) and forwarding with geventhttpclient."""
    targets = procs.targets(gateway.url, upstream.url, "hello", stream=False)
    passthrough = procs.start_passthrough(upstream, cpus["ki2api"]) if floors else None
    if passthrough is not None:
        direct = targets["direct"]
        targets["passthrough"] = procs.through(direct, upstream, passthrough, "passthrough")
        targets["flask_only"] = dataclasses.replace(direct, name="flask_only", url=f"{passthrough.url}/ceiling")
        for route in ("socket", "geventhttpclient"):
            url = f"{passthrough.url}/{route}/generateAssistantResponse"
            targets[route] = dataclasses.replace(direct, name=route, url=url)
    try:
        for target in targets.values():
            wrk.run(target, 10, 1, cpus["load"])  # warm up connections, pools and caches
        return {name: _load_pair(target, plan, log, cpus, upstream.kind) for name, target in targets.items()}
    finally:
        if passthrough is not None:
            passthrough.stop()


def request_streamer(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
                     cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """The request path against the bench streamer: ki2api and direct (the floors are measured on the fake Kiro)."""
    return request_path(gateway, upstream, plan, log, cpus, floors=False)


def _load_pair(target: procs.Target, plan: Plan, log: Callable[[str], None], cpus: dict[str, set[int] | None],
               kind: str) -> dict[str, Any]:
    """c=1 (latency) and c=50 (throughput) on one target."""
    c1 = wrk.run(target, 1, plan.wrk_seconds, cpus["load"])
    c50 = wrk.run(target, 50, plan.wrk_seconds, cpus["load"])
    log(f"  {kind} {target.name}: c1 p50 {c1.p50:.3f} ms p99 {c1.p99:.3f} ms; c50 {c50.rps:.0f} req/s")
    return {"c1": vars(c1), "c50": vars(c50)}


WAITS = (0.05, 0.5)  # seconds the upstream takes before its first frame in request_waiting


def request_waiting(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
                    cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """Non-streamed short answers at c=50 from an upstream that thinks before its first frame, as a model does
    (Kiro's own first token takes a second or more): how much of the upstream's requests/s ki2api passes on
    once the upstream, not the worker's CPU, sets the pace."""
    result: dict[str, Any] = {}
    for wait in WAITS:
        targets = procs.targets(gateway.url, upstream.url, spec(4, stamp=False, size=40, first=wait), stream=False)
        for name, target in targets.items():
            c50 = wrk.run(target, 50, max(plan.wrk_seconds, 4 * wait), cpus["load"])
            result.setdefault(str(wait), {})[name] = vars(c50)
            log(f"  first frame after {wait * 1000:g} ms, {name}: c50 {c50.rps:.0f} req/s")
    return result


def _rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(SAMPLE_EVERY):
        try:
            peak[0] = max(peak[0], procs.rss_kib(pid))
        except (OSError, RuntimeError):
            return


def hold(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
         cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """N streams of hold_seconds each, opened at RAMP/s, all through one worker; RSS sampled meanwhile."""
    frames = plan.hold_seconds  # one frame a second
    targets = procs.targets(gateway.url, upstream.url, spec(frames, pace=1.0), stream=True)
    worker = gateway.workers[0]
    warm = procs.targets(gateway.url, upstream.url, spec(5, pace=0.01), stream=True)["ki2api"]
    streams.run(warm, 50, expect=5, cpus=cpus["load"])  # warm-up: greenlets, connection pool, caches
    result: dict[str, Any] = {}
    for name in ("direct", "ki2api"):
        before, peak, stop = procs.rss_kib(worker), [0], threading.Event()
        most_open = [0]
        sampler = threading.Thread(target=_rss_sampler, args=(worker, stop, peak), daemon=True)
        sampler.start()
        summary = streams.run(targets[name], plan.hold_streams, rate=RAMP, expect=frames, cpus=cpus["load"],
                              on_progress=lambda p: most_open.__setitem__(0, max(most_open[0], p["open"])))
        stop.set()
        sampler.join()
        summary.update(rss_before_kib=before, rss_peak_kib=peak[0], rss_after_kib=procs.rss_kib(worker),
                       most_open=most_open[0])
        result[name] = summary
        log(f"  hold {name}: {summary['completed']}/{plan.hold_streams} completed, most open {most_open[0]}, "
            f"worker RSS {before} -> {peak[0]} KiB")
    return result


def flow(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
         cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """Open-loop arrivals keeping flow_streams open; per-frame delay and TTFB of streams started once full."""
    frames = round(plan.flow_stream_seconds / plan.flow_pace)
    targets = procs.targets(gateway.url, upstream.url, spec(frames, pace=plan.flow_pace), stream=True)
    rate = plan.flow_streams / plan.flow_stream_seconds
    total = int(rate * plan.flow_stream_seconds * 2)  # the second half of the arrivals are measured
    result: dict[str, Any] = {}
    for name in ("direct", "ki2api"):
        cpu0 = procs.cpu_seconds(gateway.workers[0])
        summary = streams.run(targets[name], total, rate=rate, warmup=plan.flow_stream_seconds, expect=frames,
                              cpus=cpus["load"])
        summary["worker_cpu_s"] = procs.cpu_seconds(gateway.workers[0]) - cpu0
        result[name] = summary
        log(f"  flow {name}: {summary['completed']}/{total} completed; delay p99 "
            f"{summary['delay_ms'].get('p99', float('nan')):.2f} ms; ttfb p99 "
            f"{summary['ttfb_ms'].get('p99', float('nan')):.2f} ms")
    result["frames_per_s"] = rate * plan.flow_stream_seconds / plan.flow_pace
    result["frames_per_stream"] = frames
    return result


def cpu_per_frame(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
                  cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """Worker CPU seconds per forwarded frame under gunicorn, paced (a frame per read) and in bursts; the same
    loads through bench/relay.py (bytes copied, nothing parsed) give the floor any gevent process pays."""
    result: dict[str, Any] = {}
    relay = procs.start_relay(upstream, cpus["ki2api"])
    passthrough = procs.start_passthrough(upstream, cpus["ki2api"])
    try:
        for label, pace in (("paced", 0.01), ("burst", 0.0)):
            frames = plan.cpu_frames
            target = procs.targets(gateway.url, upstream.url, spec(frames, pace=pace, stamp=False), stream=True)
            direct = target["direct"]
            result[label] = {}
            content = json.loads(target["ki2api"].body)["messages"][0]["content"]
            for name, who, pid in (
                    ("us_per_frame", target["ki2api"], gateway.workers[0]),
                    ("anthropic_us_per_frame", procs.anthropic_target(gateway.url, content, stream=True),
                     gateway.workers[0]),
                    ("relay_us_per_frame", procs.through(direct, upstream, relay), relay.pid),
                    ("passthrough_us_per_frame", procs.through(direct, upstream, passthrough), passthrough.pid)):
                cpu0 = procs.cpu_seconds(pid)
                summary = streams.run(who, plan.cpu_streams, expect=0, cpus=cpus["load"])
                result[label][name] = (procs.cpu_seconds(pid) - cpu0) / (plan.cpu_streams * frames) * 1e6
                result[label][name.replace("us_per_frame", "completed")] = summary["completed"]
            log(f"  cpu {label}: {result[label]['us_per_frame']:.1f} us of worker CPU per frame (Anthropic API: "
                f"{result[label]['anthropic_us_per_frame']:.1f}, bare relay: "
                f"{result[label]['relay_us_per_frame']:.1f}, Flask passthrough: "
                f"{result[label]['passthrough_us_per_frame']:.1f})")
    finally:
        relay.stop()
        passthrough.stop()
    return result


def _median_seconds(call: Callable[[], Any], repeat: int) -> float:
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def growth(gateway: procs.Ki2api, upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
           cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """One request at a time: whole-request time for growing answers (streamed) and prompts (not streamed)."""
    session = requests.Session()
    result: dict[str, Any] = {"answers": {}, "prompts": {}}

    def post(target: procs.Target) -> Callable[[], Any]:
        def call() -> None:
            response = session.post(target.url, data=target.body, headers=target.headers, timeout=120)
            if response.status_code != 200:
                raise RuntimeError(f"{target.name}: HTTP {response.status_code} {response.text[:200]}")
        return call

    for n in plan.answer_sizes:
        targets = procs.targets(gateway.url, upstream.url, spec(n, stamp=False), stream=True)
        result["answers"][n] = {name: _median_seconds(post(t), plan.growth_repeat) * 1000
                                for name, t in targets.items()}
        log(f"  answer of {n} frames: {result['answers'][n]}")
    for size in plan.prompt_sizes:
        targets = procs.targets(gateway.url, upstream.url, spec(4, stamp=False) + "\n" + procs.prose(size),
                                stream=False)
        result["prompts"][size] = {name: _median_seconds(post(t), plan.growth_repeat) * 1000
                                   for name, t in targets.items()}
        log(f"  prompt of {size} bytes: {result['prompts'][size]}")
    return result


def in_process(plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    """ki2api's own code without sockets: CPU per frame, and time/heap growth with answers and prompts."""
    app = inproc.App()
    result = {"us_per_frame": inproc.cpu_per_frame(app, plan.inproc_frames),
              "us_per_frame_64_per_read": inproc.cpu_per_frame(app, plan.inproc_frames, per_chunk=64),
              "answers": inproc.answer_growth(app, plan.answer_sizes),
              "prompts": inproc.prompt_growth(app, plan.prompt_sizes)}
    log(f"  in-process: {result['us_per_frame']:.2f} us per frame")
    return result


def scaling(upstream: procs.Upstream, plan: Plan, log: Callable[[str], None],
            cpus: dict[str, set[int] | None]) -> dict[str, Any]:
    """Requests per second at concurrency 50 with 2, 4 ... workers (1 worker is request_path's figure)."""
    result: dict[str, Any] = {}
    for workers in plan.scaling:
        gateway = procs.Ki2api(upstream, workers=workers, cpus=cpus["ki2api"] if workers == 1 else None,
                               **procs.MANY_CLIENTS)
        try:
            target = procs.targets(gateway.url, upstream.url, "hello", stream=False)["ki2api"]
            wrk.run(target, 50, 1, cpus["load"])
            result[workers] = vars(wrk.run(target, 50, plan.wrk_seconds, cpus["load"]))
            log(f"  {workers} worker(s): {result[workers]['rps']:.0f} req/s")
        finally:
            gateway.stop()
    return result
