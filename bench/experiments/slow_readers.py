"""The worker's RSS while clients read a bulky answer slowly: before, during and after (docs/performance.md).

One gevent worker of the ki2api tree given (default: this one, so a checkout of an older commit can be measured
the same way), the tests' fake Kiro sending a 12 MB answer (12,000 frames of 1,000 bytes) as one HTTP chunk,
and rounds of clients that open a stream, take its first bytes and stop reading for a while, then hang up.

    python -m bench.experiments.slow_readers [--tree DIR] [--path /v1/messages] [--rounds 10,20]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.fakes.kiro.process import FakeKiro
from tests.helpers.credentials import ACCESS, KEY, REFRESH, write_token_file
from tests.helpers.gateway import REPO, free_port

ANSWER = {"frames_count": 12_000, "frame_bytes": 1_000, "chunk_size": 64 << 20}
BODIES = {"/v1/chat/completions": {"model": "claude-sonnet-4-5", "stream": True,
                                   "messages": [{"role": "user", "content": "hi"}]},
          "/v1/messages": {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]}}


def _rss_mb(master: int) -> int:
    worker = open(f"/proc/{master}/task/{master}/children").read().split()[0]
    for line in open(f"/proc/{worker}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS")


def _start(tree: Path, kiro: FakeKiro, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "API_KEY"))}
    env.update({"API_KEY": KEY, "KIRO_TOKEN_FILE": str(write_token_file(tmp / "sso" / "kiro-auth-token.json")),
                "KIRO_API_BASE": kiro.url, "KIRO_REFRESH_URL": kiro.refresh_url, "KIRO_OIDC_URL": kiro.oidc_url,
                "KI2API_STATE_DIR": str(tmp / "state"), "UPSTREAM_READ_TIMEOUT": "60", "KIRO_USAGE_INTERVAL": "0",
                "KIRO_MODELS_INTERVAL": "0", "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1",
                "KI2API_DOTENV": os.devnull, "PYTHONPATH": str(tree), "LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
                            cwd=str(tree), env=env, stdout=open(tmp / "gunicorn.log", "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO)
    parser.add_argument("--path", default="/v1/chat/completions", choices=sorted(BODIES))
    parser.add_argument("--rounds", default="10,20")
    parser.add_argument("--hold", type=float, default=8.0, help="seconds the clients stop reading")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH) as kiro:
        proc, url = _start(args.tree, kiro, tmp)
        try:
            body = json.dumps(BODIES[args.path]).encode()
            head = (f"POST {args.path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            warm = requests.post(url + args.path, json={**BODIES[args.path], "stream": False},
                                 headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
            assert warm.status_code == 200, warm.text
            print(f"{args.tree} {args.path}: before {_rss_mb(proc.pid)} MB")
            for n in (int(x) for x in args.rounds.split(",")):
                kiro.script(*[ANSWER] * n)
                clients = []
                for _ in range(n):
                    client = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
                    client.sendall(head + body)
                    assert client.recv(4096).startswith(b"HTTP/1.1 200")
                    clients.append(client)  # then it reads nothing more
                time.sleep(args.hold)
                during = _rss_mb(proc.pid)
                for client in clients:
                    client.close()
                deadline = time.monotonic() + 30
                while kiro.stats()["open_streams"] and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(3)
                print(f"{n} slow readers: during {during} MB, after {_rss_mb(proc.pid)} MB")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
