"""What telling Kiro's silences costs per read (upstream/reading.py's check before each read), under gevent on a
socket pair: with the frame already there, and with a read that must wait for it (docs/performance.md).

    python -m bench.experiments.keepalive_cost
"""
from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402  (after patching, as the worker has it)
import time  # noqa: E402

import gevent  # noqa: E402

from ki2api.upstream import reading  # noqa: E402

N = 20_000


class _Raw:
    """What urllib3's response offers reading.py: `_fp.fp`, the buffered reader over the socket."""

    def __init__(self, fp):
        self._fp = type("HTTPResponse", (), {"fp": fp})()


def main() -> None:
    a, b = socket.socketpair()
    fp = a.makefile("rb")
    a.settimeout(300)
    raw, wait = _Raw(fp), reading._waiter()

    def ready(check: bool) -> float:
        start = time.perf_counter()
        for _ in range(N):
            b.send(b"x" * 100)
            if check:
                reading._readable(raw, 15, wait)
            fp.read(100)
        return (time.perf_counter() - start) / N * 1e6

    def paced(check: bool) -> float:
        start = time.perf_counter()
        for _ in range(N // 4):
            gevent.spawn_later(0, b.send, b"x" * 100)
            if check:
                reading._readable(raw, 15, wait)
            fp.read(100)
        return (time.perf_counter() - start) / (N // 4) * 1e6

    for name, run in (("frame already there", ready), ("read waits for the frame", paced)):
        runs = [(run(True), run(False)) for _ in range(3)]  # alternated: the machine's load drifts
        with_check, plain = min(r[0] for r in runs), min(r[1] for r in runs)
        print(f"{name}: {with_check:.2f} µs with the check, {plain:.2f} µs without, {with_check - plain:.2f} µs more")


if __name__ == "__main__":
    main()
