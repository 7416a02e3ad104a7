"""Starting what a benchmark measures: the fake upstream, ki2api under gunicorn, and reading /proc about them."""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


REPO = Path(__file__).absolute().parents[1]  # not resolved: a bench/ symlinked into another tree runs that tree
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.helpers.credentials import write_token_file  # noqa: E402
from tests.fakes.kiro.process import FakeKiro  # noqa: E402
from tests.helpers.gateway import Gateway, free_port  # noqa: E402

ACCESS = "aoaAAAAAbench-access-token"
REFRESH = "aorAAAAAbench-refresh-token"
KEY = "bench-key"
TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0


def raise_fd_limit() -> int:
    """Lift this process's open-file limit to the hard limit (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(pids: list[int], cpus: set[int] | None) -> None:
    """Restrict processes to `cpus` (None: leave them free); ignore a CPU set the machine does not have."""
    if not cpus:
        return
    usable = cpus & os.sched_getaffinity(0)
    for pid in pids:
        try:
            os.sched_setaffinity(pid, usable or os.sched_getaffinity(0))
        except ProcessLookupError:
            pass


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(p) for p in text]
    return found


def rss_kib(pid: int) -> int:
    """Resident set size of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def loadavg() -> tuple[float, float, float]:
    """The machine's 1/5/15-minute load averages."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


@dataclass
class Upstream:
    """A running upstream: the tests' fake Kiro or the bench streamer; `url` is its base."""

    kind: str
    url: str
    pid: int
    handle: Any

    def stop(self) -> None:
        """Stop the process."""
        if self.kind == "fake_kiro":
            self.handle.stop()
            return
        self.handle.terminate()
        try:
            self.handle.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.handle.kill()
            self.handle.wait()

    def set_default(self, spec: dict[str, Any]) -> None:
        """The answer every chat request gets (fake Kiro spec keys; the streamer takes its spec per request)."""
        if self.kind == "fake_kiro":
            self.handle.set_default(spec)


def start_upstream(kind: str, cpus: set[int] | None = None) -> Upstream:
    """Start the tests' fake Kiro (`fake_kiro`) or the bench streamer (`streamer`) on a free loopback port."""
    if kind == "fake_kiro":
        fake = FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH)
        pin([fake.proc.pid], cpus)
        return Upstream(kind, fake.url, fake.proc.pid, fake)
    return _serve(kind, ["bench.streamer", "--token", ACCESS], cpus)


def start_relay(upstream: Upstream, cpus: set[int] | None = None) -> Upstream:
    """Start bench/relay.py (a bare gevent byte relay) in front of the bench streamer."""
    return _serve("relay", ["bench.relay", "--upstream", str(upstream.url.rsplit(":", 1)[1])], cpus)


def start_passthrough(upstream: Upstream, cpus: set[int] | None = None) -> Upstream:
    """Start bench/passthrough.py under gunicorn (one gevent worker) in front of `upstream`; `pid` is the worker's."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PASSTHROUGH_UPSTREAM": upstream.url}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-k", "gevent", "-w", "1", "-b",
                             f"127.0.0.1:{port}", "--log-level", "warning", "bench.passthrough:app"],
                            cwd=str(REPO), env=env, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        workers = children(proc.pid) if proc.poll() is None else []
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            workers = []
        if workers:
            pin([proc.pid, *workers], cpus)
            return Upstream("passthrough", f"http://127.0.0.1:{port}", workers[0], proc)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the passthrough gunicorn did not start")


def _serve(kind: str, module_args: list[str], cpus: set[int] | None) -> Upstream:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", *module_args, "--port", str(port)],
                            cwd=str(REPO), env=env, stdin=subprocess.DEVNULL)
    pin([proc.pid], cpus)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bench streamer exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Upstream(kind, url, proc.pid, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"bench {kind} did not start")


# The suite's load comes from one loopback address standing in for thousands of clients, so its ki2api runs
# without the per-address connection cap (as it does behind a proxy, TRUSTED_PROXIES): with the cap (256) the
# 2,000 held streams would be 256 and the rest 429s. bench/experiments/slowloris.py measures the cap itself.
MANY_CLIENTS = {"MAX_CONNECTIONS_PER_ADDRESS": "0"}


class Ki2api:
    """ki2api as deployed (`gunicorn -c config/gunicorn.conf.py wsgi:app`, gevent workers) in front of `upstream`."""

    def __init__(self, upstream: Upstream, workers: int = 1, cpus: set[int] | None = None, **env: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="ki2api-bench-"))
        token_file = write_token_file(self.workdir / "sso" / "kiro-auth-token.json", ACCESS, REFRESH,
                                      expires_in=24 * 3600)
        full_env = {"API_KEY": KEY, "KIRO_TOKEN_FILE": str(token_file), "KIRO_API_BASE": upstream.url,
                    "KIRO_REFRESH_URL": f"{upstream.url}/refreshToken", "KIRO_OIDC_URL": f"{upstream.url}/token",
                    "KI2API_STATE_DIR": str(self.workdir / "state"), **env}
        self.gateway = Gateway(full_env, self.workdir / "gunicorn.log", workers=workers)
        self.gateway.wait_ready(timeout=START_TIMEOUT)
        self.url = self.gateway.url
        self.master = self.gateway.proc.pid
        self.workers = self._wait_workers(workers)
        pin([self.master, *self.workers], cpus)

    def _wait_workers(self, count: int) -> list[int]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pids = children(self.master)
            if len(pids) >= count:
                return pids
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not fork {count} workers")

    def log_text(self) -> str:
        """gunicorn's and ki2api's log so far."""
        return self.gateway.log_text()

    def stop(self) -> None:
        """Stop gunicorn and remove its files (token, state, log)."""
        self.gateway.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def kiro_payload(content: str, model_id: str = "claude-sonnet-4.5") -> dict[str, Any]:
    """The body ki2api would send upstream for one user message (what a direct request sends)."""
    return {"conversationState": {"conversationId": "bench", "agentTaskType": "vibe", "chatTriggerType": "MANUAL",
                                  "currentMessage": {"userInputMessage": {"content": content, "modelId": model_id,
                                                                          "origin": "AI_EDITOR"}},
                                  "history": []}}


def prose(size: int) -> str:
    """`size` characters of English-like text (words, punctuation, line breaks), as a long prompt would be."""
    line = ("The gateway reads each request, checks its key, translates the messages, and sends them on; "
            "it then turns 2,048 upstream frames back into chunks (JSON, SSE).\n")
    return (line * (size // len(line) + 1))[:size]


def openai_body(content: str, stream: bool, model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    """An OpenAI chat-completion request with one user message."""
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]}


@dataclass(frozen=True)
class Target:
    """Where a load goes: URL path, headers and body, for ki2api or straight to the upstream."""

    name: str
    url: str
    headers: dict[str, str]
    body: bytes


def through(target: Target, upstream: Upstream, server: Upstream, name: str | None = None) -> Target:
    """`target` (a direct request to `upstream`) sent to `server` instead: the relay or the passthrough."""
    return dataclasses.replace(target, name=name or target.name, url=target.url.replace(upstream.url, server.url))


def anthropic_target(ki2api_url: str, content: str, stream: bool) -> Target:
    """The same request through ki2api's Anthropic Messages API."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1_000_000, "stream": stream,  # never the cut
            "messages": [{"role": "user", "content": content}]}
    return Target("anthropic", f"{ki2api_url}/v1/messages",
                  {"x-api-key": KEY, "anthropic-version": "2023-06-01", "Content-Type": "application/json"},
                  json.dumps(body).encode())


def targets(ki2api_url: str, upstream_url: str, content: str, stream: bool) -> dict[str, Target]:
    """The same request for ki2api (OpenAI API) and for the upstream directly (Kiro API)."""
    return {
        "ki2api": Target("ki2api", f"{ki2api_url}/v1/chat/completions",
                         {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
                         json.dumps(openai_body(content, stream)).encode()),
        "direct": Target("direct", f"{upstream_url}/generateAssistantResponse",
                         {"Authorization": f"Bearer {ACCESS}", "Content-Type": "application/json"},
                         json.dumps(kiro_payload(content)).encode()),
    }
