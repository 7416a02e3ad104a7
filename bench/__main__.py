"""`python -m bench [--quick|--smoke] [--runs N] [--json PATH] [--pin]`: the whole benchmark suite, then one table.

ki2api runs exactly as deployed (`gunicorn -c config/gunicorn.conf.py wsgi:app`, gevent workers), in front of
the tests' fake Kiro (tests/fakes/kiro/) for the request-path figures and of bench/streamer.py (same frames,
each stamped with its send time) for the streaming ones; every load is also sent straight to the upstream
("direct") in the same run. Load generators: wrk (non-streamed) and bench/streams.py (gevent, streams).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import procs, report, suite, wrk


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, kernel, Python: what the figures depend on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cores": os.cpu_count(), "memory_gib": round(memory / 1024 / 1024, 1), "cpu": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fd_limit": procs.raise_fd_limit(),
            "gc_thresholds": os.environ.get("GC_THRESHOLDS", "").strip() or "unset (the tuned default)"}


SCENARIOS = ("request_fake_kiro", "scaling", "hold", "flow", "cpu", "request_streamer", "request_waiting", "growth",
             "inproc")


def one_run(plan: suite.Plan, cpus: dict[str, set[int] | None], log: Any, only: set[str]) -> dict[str, Any]:
    """Every scenario asked for, once; load averages noted before and after."""
    result: dict[str, Any] = {"loadavg_before": procs.loadavg()}
    if only & {"request_fake_kiro", "scaling"}:
        fake = procs.start_upstream("fake_kiro", cpus["upstream"])
        try:
            if "request_fake_kiro" in only:
                log("request path, tests' fake Kiro")
                gateway = procs.Ki2api(fake, cpus=cpus["ki2api"], **procs.MANY_CLIENTS)
                try:
                    result["request_fake_kiro"] = suite.request_path(gateway, fake, plan, log, cpus)
                finally:
                    gateway.stop()
            if "scaling" in only:
                log("scaling with workers")
                result["scaling"] = suite.scaling(fake, plan, log, cpus)
        finally:
            fake.stop()
    streamed = [(name, scenario) for name, scenario in (
        ("hold", suite.hold), ("flow", suite.flow), ("cpu", suite.cpu_per_frame),
        ("request_streamer", suite.request_streamer), ("request_waiting", suite.request_waiting),
        ("growth", suite.growth)) if name in only]
    if streamed:
        streamer = procs.start_upstream("streamer", cpus["upstream"])
        try:
            gateway = procs.Ki2api(streamer, cpus=cpus["ki2api"], **procs.MANY_CLIENTS)
            try:
                for name, scenario in streamed:
                    log(f"{name}, bench streamer")
                    result[name] = scenario(gateway, streamer, plan, log, cpus)
            finally:
                gateway.stop()
        finally:
            streamer.stop()
    if "inproc" in only:
        log("in-process")
        result["inproc"] = suite.in_process(plan, log)
    result["loadavg_after"] = procs.loadavg()
    return result


def main() -> None:
    """Run the suite `--runs` times and print the table (median [min..max] across runs)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under a minute")
    sizes.add_argument("--smoke", action="store_true", help="tiny sizes, every figure but none meaningful: "
                       "checks the harness itself (tests/test_bench.py)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the suite; the table shows the spread")
    parser.add_argument("--json", help="also write every raw result here")
    parser.add_argument("--only", help=f"comma-separated scenarios, of: {','.join(SCENARIOS)}")
    parser.add_argument("--flow-streams", type=int, help="concurrent streams for the delay/TTFB figures")
    parser.add_argument("--flow-pace", type=float, help="seconds between a stream's frames in that scenario")
    parser.add_argument("--pin", action="store_true",
                        help="pin ki2api to CPU 1, the upstream and load generators to CPU 0")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("bench needs wrk (Debian package `wrk`): apt-get install wrk, or run bench/run")
    plan_name = "quick" if args.quick else "smoke" if args.smoke else "full"
    plan = {"quick": suite.QUICK, "smoke": suite.SMOKE, "full": suite.FULL}[plan_name]
    overrides = {"flow_streams": args.flow_streams, "flow_pace": args.flow_pace}
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    if only - set(SCENARIOS):
        sys.exit(f"unknown scenarios {sorted(only - set(SCENARIOS))}; known: {', '.join(SCENARIOS)}")
    cpus: dict[str, set[int] | None] = (
        {"ki2api": {1}, "upstream": {0}, "load": {0}} if args.pin else {"ki2api": None, "upstream": None,
                                                                         "load": None})
    info = machine()
    tree = _git_state()  # the tree the runs start from
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        log(f"run {i + 1} of {args.runs} ({plan_name})")
        runs.append(one_run(plan, cpus, log, only))
        if args.json:  # after every run, so an interrupted series still leaves the runs it finished
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"machine": info, "plan": vars(plan), "plan_name": plan_name,
                                                   "pinned": args.pin, "git": tree, "runs": runs,
                                                   "elapsed_s": time.monotonic() - started}, indent=1, default=str))
    elapsed = time.monotonic() - started
    loads = " ".join(f"{r['loadavg_before'][0]:.2f}->{r['loadavg_after'][0]:.2f}" for r in runs)
    header = (f"ki2api benchmarks, {info['date']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['cpu']}, "
              f"Python {info['python']}; GC_THRESHOLDS {info['gc_thresholds']}\n"
              f"{len(runs)} run(s), {plan_name} plan, "
              f"{elapsed:.0f} s; 1-min load average per run: {loads}; pinned: {args.pin}\n"
              f"N streams = {plan.flow_streams} (each {plan.flow_stream_seconds} s, a frame every "
              f"{plan.flow_pace} s); hold = {plan.hold_streams} streams of {plan.hold_seconds} s; "
              f"values: median [min..max]; 'added' = ki2api - direct")
    print(report.table(runs, header, quick=plan.hold_streams < suite.FULL.hold_streams))


def _git_state() -> str:
    """HEAD, and whether tracked files differ from it (untracked ones, such as this run's own result file, do not
    count: the code the run loads is tracked)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=procs.REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=procs.REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


if __name__ == "__main__":
    main()
