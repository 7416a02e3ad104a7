"""Profile the gunicorn worker with py-spy while a load runs: `python -m bench.experiments.profile request|stream`.

Prints the functions that hold the most samples (self and inclusive) and keeps py-spy's collapsed stacks
(and a flame graph SVG with --svg) for a closer look.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .. import procs, streams, wrk


def record(pid: int, seconds: float, out: Path, fmt: str = "raw") -> None:
    """Sample `pid` with py-spy (native frames off, GIL-idle samples dropped) into `out`."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
                    "--format", fmt, "--output", str(out), "--nonblocking"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _function(frame: str) -> str:
    """`name (path/file.py:line)` -> `name (file.py)`: samples add up per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else name


def summarise(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [_function(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    lines = [f"{total} samples", "", "self %   function"]
    lines += [f"{100 * n / total:6.1f}   {name}" for name, n in own.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * n / total:6.1f}   {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    """Run one load against ki2api and profile its worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", choices=["request", "stream"], help="non-streamed requests, or many streams")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="ki2api-profile-"))
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between frames of a stream")
    parser.add_argument("--frames", type=int, default=0, help="frames per stream (default: enough to last)")
    parser.add_argument("--rate", type=float, default=0, help="streams started per second (default: all at once)")
    parser.add_argument("--svg", action="store_true", help="also write a flame graph")
    args = parser.parse_args()
    procs.raise_fd_limit()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    upstream = procs.start_upstream("streamer")
    gateway = procs.Ki2api(upstream)
    try:
        if args.path == "request":
            target = procs.targets(gateway.url, upstream.url, "hello", stream=False)["ki2api"]
            load = threading.Thread(target=wrk.run, args=(target, 50, args.seconds + 2))
        else:
            frames = args.frames or int(3 * args.seconds / max(args.pace, 0.001))
            spec = json.dumps({"n": frames, "b": 120, "pace": args.pace})
            target = procs.targets(gateway.url, upstream.url, spec, stream=True)["ki2api"]
            load = threading.Thread(target=streams.run, args=(target, args.streams), kwargs={"rate": args.rate})
        load.start()
        record(gateway.workers[0], args.seconds, out / f"{args.path}.collapsed")
        if args.svg:
            record(gateway.workers[0], args.seconds / 2, out / f"{args.path}.svg", fmt="flamegraph")
        load.join()
        print(summarise(out / f"{args.path}.collapsed"))
        print(f"\nstacks: {out}", file=sys.stderr)
    finally:
        gateway.stop()
        upstream.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
