"""Closed-loop HTTP load with wrk (C, epoll; Debian package `wrk`): latency percentiles and requests per second."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .procs import Target, pin

# wrk runs this Lua: POST the body with the headers, and print the figures as one JSON line at the end.
SCRIPT = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
{headers}
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "bad_status": %d, "errors": %d, '
    .. '"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %f, "max": %d}}\\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run; latencies in milliseconds."""

    requests: int
    rps: float
    p50: float
    p90: float
    p99: float
    p999: float
    mean: float
    failed: int


def available() -> bool:
    """Whether the wrk binary is installed."""
    return shutil.which("wrk") is not None


def run(target: Target, connections: int, seconds: float, cpus: set[int] | None = None,
        threads: int = 1) -> WrkResult:
    """Run wrk against `target` with `connections` keep-alive connections for `seconds`."""
    workdir = Path(tempfile.mkdtemp(prefix="wrk-"))
    body = workdir / "body"
    body.write_bytes(target.body)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    script = workdir / "post.lua"
    script.write_text(SCRIPT.format(body=body, headers=headers))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "30s", "-s", str(script), target.url]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: pin([os.getpid()], cpus))
    out, _ = proc.communicate(timeout=seconds + 60)
    shutil.rmtree(workdir, ignore_errors=True)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    data = json.loads(line[len("WRKJSON "):])
    return WrkResult(requests=data["requests"], rps=data["requests"] / (data["duration_us"] / 1e6),
                     p50=data["p50"] / 1000, p90=data["p90"] / 1000, p99=data["p99"] / 1000,
                     p999=data["p999"] / 1000, mean=data["mean"] / 1000,
                     failed=data["bad_status"] + data["errors"])
