"""Many concurrent streamed requests from one gevent process: time to first byte, per-frame delay, completion.

`run(target, streams, ...)` starts `python -m bench.streams` (so gevent patches only that process), feeds it
the job as JSON and returns its summary. Each stream is one HTTP/1.1 connection; the body is de-chunked and
scanned for the bench streamer's `@<send time>@` stamps, so each frame's delay (arrival - send, both
CLOCK_MONOTONIC on this machine) is known whether the bytes came straight from the upstream or via ki2api.
Streams start at `rate` per second (open loop; 0: all at once); only those started after `warmup` seconds count
towards the latency figures, so "at N concurrent streams" means N already open when a stream starts.
"""
from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

STAMP = re.compile(rb"@(\d{10}\.\d{6})@")
STATUS_EVERY = 0.5


# What ends a complete answer, per target (the upstream's own answer ends with the HTTP body).
END_MARKS = {"ki2api": "data: [DONE]", "anthropic": "event: message_stop"}


def percentiles(values: list[float], points: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles (and max, count) of `values`."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    result = {f"p{p:g}": ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] for p in points}
    result.update(max=ordered[-1], mean=sum(ordered) / len(ordered), count=len(ordered))
    return result


class Dechunker:
    """Incremental HTTP/1.1 chunked-body decoder."""

    def __init__(self) -> None:
        self.buffer = b""
        self.need = -1  # -1: reading a size line; else bytes of chunk data (+2 for CRLF) still to come
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Return the body bytes `data` completes."""
        self.buffer += data
        out = []
        while not self.done:
            if self.need < 0:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                size = int(self.buffer[:end].split(b";")[0], 16)
                self.buffer = self.buffer[end + 2:]
                if size == 0:
                    self.done = True
                    break
                self.need = size
            if len(self.buffer) < self.need + 2:
                break
            out.append(self.buffer[:self.need])
            self.buffer = self.buffer[self.need + 2:]
            self.need = -1
        return b"".join(out)


def one_stream(job: dict[str, Any], started: float, stats: dict[str, Any]) -> None:
    """Run one streamed request and record its timings into `stats`."""
    import gevent

    host, port = job["host"], job["port"]
    counted = started - stats["t0"] >= job["warmup"]
    stats["open"] += 1
    sock = None
    try:
        sock = socket.create_connection((host, port), timeout=job["timeout"])
        sock.sendall(job["request"])
        head, body, first, delays = b"", Dechunker(), None, []
        tail, in_head, done_seen = b"", True, False
        end = job["end"].encode() if job["end"] else None
        while not body.done:
            data = sock.recv(65536)
            now = time.monotonic()
            if not data:
                raise ConnectionError("closed before the end of the body")
            if first is None:
                first = now
            if in_head:
                head += data
                if b"\r\n\r\n" not in head:
                    continue
                head, data = head.split(b"\r\n\r\n", 1)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
                in_head = False
            text = tail + body.feed(data)
            keep = max(0, len(text) - 30)
            for match in STAMP.finditer(text):
                delays.append((now - float(match.group(1))) * 1000)
                keep = max(keep, match.end())
            done_seen = done_seen or (end is not None and end in text)
            tail = text[keep:]
        if len(delays) != job["expect"] or (end is not None and not done_seen):
            raise ValueError(f"stream incomplete: {len(delays)} of {job['expect']} frames")
        stats["completed"] += 1
        if counted:
            stats["ttfb"].append((first - started) * 1000)
            stats["delays"].extend(delays)
    except Exception as exc:  # a failed stream is a figure, not a crash of the load generator
        key = f"{type(exc).__name__}: {exc}"[:120]
        stats["failures"][key] = stats["failures"].get(key, 0) + 1
    finally:
        stats["open"] -= 1
        if sock is not None:
            sock.close()
        gevent.sleep(0)


def client(job: dict[str, Any]) -> dict[str, Any]:
    """Start every stream on schedule, report progress on stdout, return the summary."""
    import gevent
    import gevent.pool

    stats: dict[str, Any] = {"t0": time.monotonic(), "open": 0, "completed": 0, "failures": {}, "ttfb": [],
                             "delays": []}
    pool = gevent.pool.Group()

    def progress() -> None:
        while True:
            print(json.dumps({"open": stats["open"], "completed": stats["completed"]}), flush=True)
            gevent.sleep(STATUS_EVERY)

    reporter = gevent.spawn(progress)
    rate, t0 = job["rate"], stats["t0"]
    for i in range(job["streams"]):
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        pool.spawn(one_stream, job, time.monotonic(), stats)
    pool.join()
    reporter.kill()
    return {"streams": job["streams"], "completed": stats["completed"], "failures": stats["failures"],
            "ttfb_ms": percentiles(stats["ttfb"]), "delay_ms": percentiles(stats["delays"]),
            "elapsed_s": time.monotonic() - t0}


def request_bytes(url: str, headers: dict[str, str], body: bytes) -> bytes:
    """The raw HTTP/1.1 request, closing the connection after the answer."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run(target: Any, streams: int, rate: float = 0.0, warmup: float = 0.0, expect: int = 0,
        on_progress: Callable[[dict[str, int]], None] | None = None, cpus: set[int] | None = None,
        timeout: float = 120.0) -> dict[str, Any]:
    """Run `streams` streamed requests against `target` (a procs.Target) from a separate gevent process."""
    from .procs import REPO, pin

    parts = urlsplit(target.url)
    job = {"host": parts.hostname, "port": parts.port, "request": None, "streams": streams, "rate": rate,
           "warmup": warmup, "expect": expect, "end": END_MARKS.get(target.name), "timeout": timeout}
    payload = json.dumps({**job, "request": request_bytes(target.url, target.headers, target.body).decode()})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.streams"], cwd=str(REPO), env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=lambda: pin([os.getpid()], cpus))
    proc.stdin.write(payload)
    proc.stdin.close()
    result = None
    for line in proc.stdout:
        data = json.loads(line)
        if "streams" in data:
            result = data
        elif on_progress is not None:
            on_progress(data)
    proc.wait()
    if result is None:
        raise RuntimeError(f"stream client exited with {proc.returncode} and no result")
    return result


def main() -> None:
    """The client process: read the job from stdin, print progress lines, then the result line."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    job = json.loads(sys.stdin.read())
    job["request"] = job["request"].encode()
    print(json.dumps(client(job)), flush=True)


if __name__ == "__main__":
    main()
