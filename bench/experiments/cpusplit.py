"""`python -m bench.experiments.cpusplit [--perf]`: user and system CPU per paced frame, ki2api's worker against the passthrough.

Pinned like the suite (the workers on CPU 1, the upstream and the load on CPU 0); 100 streams of 600 frames, 10 ms
apart, three rounds. Says whether what ki2api adds per frame over the passthrough is Python (user) or system calls.
With --perf, Linux perf (Debian's linux-perf) samples each worker in the last round and the shared objects and
C functions its CPU went to are printed: the native side that py-spy does not show.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .. import procs, streams
from ..suite import spec

FRAMES, STREAMS, ROUNDS = 600, 100, 3


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def perf_top(data: Path, sort: str, lines: int) -> str:
    """The first `lines` entries of `perf report` (self time) for a recording, sorted by `sort`."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", sort],
                         capture_output=True, text=True, check=True).stdout
    return "\n".join([line for line in out.splitlines() if "%" in line and not line.startswith("#")][:lines])


def main() -> None:
    """Run the rounds and print user / system µs per frame for each process (and, with --perf, its profile)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perf", action="store_true", help="sample each worker with perf in the last round")
    args = parser.parse_args()
    if args.perf and not shutil.which("perf"):
        parser.error("--perf needs Linux perf (Debian: apt-get install linux-perf)")
    procs.raise_fd_limit()
    upstream = procs.start_upstream("streamer", {0})
    gateway = procs.Ki2api(upstream)
    procs.pin([gateway.master, *gateway.workers], {1})
    passthrough = procs.start_passthrough(upstream, {1})
    recordings = Path(tempfile.mkdtemp(prefix="cpusplit-"))
    try:
        target = procs.targets(gateway.url, upstream.url, spec(FRAMES, pace=0.01, stamp=False), stream=True)
        direct = target["direct"]
        who = {"ki2api": (target["ki2api"], gateway.workers[0]),
               "passthrough": (procs.through(direct, upstream, passthrough), passthrough.pid)}
        frames = STREAMS * FRAMES / 1e6
        for round_ in range(ROUNDS):
            for name, (load, pid) in who.items():
                recorder = None
                if args.perf and round_ == ROUNDS - 1:
                    recorder = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-p", str(pid), "-o",
                                                 str(recordings / name)], stdout=subprocess.DEVNULL)
                user0, sys0 = cpu_times(pid)
                summary = streams.run(load, STREAMS, cpus={0})
                user1, sys1 = cpu_times(pid)
                if recorder is not None:
                    recorder.send_signal(signal.SIGINT)
                    recorder.wait()
                print(f"{name:12} user {(user1 - user0) / frames:5.1f} us/frame, system {(sys1 - sys0) / frames:5.1f}"
                      f" us/frame ({summary['completed']} of {STREAMS} streams completed)", flush=True)
        for name in who if args.perf else ():
            print(f"\n{name}: where the worker's CPU went (perf, self)\n{perf_top(recordings / name, 'dso', 6)}\n"
                  f"{perf_top(recordings / name, 'sym', 8)}", flush=True)
    finally:
        gateway.stop()
        upstream.stop()
        passthrough.stop()
        shutil.rmtree(recordings, ignore_errors=True)


if __name__ == "__main__":
    main()
