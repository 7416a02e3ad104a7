"""`python -m bench.cpusplit`: user and system CPU per paced frame, ki2api's worker against the passthrough.

Pinned like the suite (the workers on CPU 1, the upstream and the load on CPU 0); 100 streams of 600 frames, 10 ms
apart, three rounds. Says whether what ki2api adds per frame over the passthrough is Python (user) or system calls.
"""
from __future__ import annotations

import os

from . import procs, streams
from .suite import spec

FRAMES, STREAMS, ROUNDS = 600, 100, 3


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    """Run the rounds and print user / system µs per frame for each process."""
    procs.raise_fd_limit()
    upstream = procs.start_upstream("streamer", {0})
    gateway = procs.Ki2api(upstream)
    procs.pin([gateway.master, *gateway.workers], {1})
    passthrough = procs.start_passthrough(upstream, {1})
    try:
        target = procs.targets(gateway.url, upstream.url, spec(FRAMES, pace=0.01, stamp=False), stream=True)
        direct = target["direct"]
        who = {"ki2api": (target["ki2api"], gateway.workers[0]),
               "passthrough": (procs.through(direct, upstream, passthrough), passthrough.pid)}
        frames = STREAMS * FRAMES / 1e6
        for _ in range(ROUNDS):
            for name, (load, pid) in who.items():
                user0, sys0 = cpu_times(pid)
                summary = streams.run(load, STREAMS, cpus={0})
                user1, sys1 = cpu_times(pid)
                print(f"{name:12} user {(user1 - user0) / frames:5.1f} us/frame, system {(sys1 - sys0) / frames:5.1f}"
                      f" us/frame ({summary['completed']} of {STREAMS} streams completed)", flush=True)
    finally:
        gateway.stop()
        upstream.stop()
        passthrough.stop()


if __name__ == "__main__":
    main()
