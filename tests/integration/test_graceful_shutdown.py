"""SIGTERM to the gunicorn master: new connections are refused at once, a stream in flight still finishes."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import openai
import pytest

from tests.helpers.credentials import KEY
from tests.helpers.gateway import REPO, free_port

pytestmark = pytest.mark.integration

DEADLINE = 30.0


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_in_flight_stream_finishes_after_sigterm_while_new_connections_are_refused(start_gateway, fake_upstream,
                                                                                   workers):
    gw = start_gateway(workers=workers, GRACEFUL_TIMEOUT="60")
    pieces = [f"part{i} " for i in range(8)]
    fake_upstream.script({"texts": pieces, "hold_after": 3})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=DEADLINE)
    stream = client.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                            messages=[{"role": "user", "content": "a long answer"}])
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 1:
                assert fake_upstream.stats()["held_streams"] == 1  # the answer is mid-way
                gw.proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + DEADLINE
                while not refuses_connections(gw.port):
                    assert time.monotonic() < deadline, "gunicorn still accepts connections after SIGTERM"
                    time.sleep(0.05)
                assert gw.proc.poll() is None  # still running: it waits for our stream
                assert fake_upstream.release() == 1
    assert received == pieces  # the whole answer, after the shutdown began
    assert gw.proc.wait(timeout=DEADLINE) == 0
    log = gw.log_text()
    assert "Handling signal: term" in log
    assert "graceful timeout" not in log.lower() and "SIGKILL" not in log
    assert "Traceback" not in log and "[ERROR]" not in log  # a normal stop logs no error


@pytest.mark.parametrize("workers", [1, 2])
def test_each_worker_stops_accepting_the_moment_sigterm_comes(start_gateway, fake_upstream, workers):
    # gunicorn's gevent worker looks at its `alive` flag once a second and serves what it accepts meanwhile;
    # ki2api's worker closes its listeners from the signal handler's greenlet and logs that moment.
    gw = start_gateway(workers=workers, GRACEFUL_TIMEOUT="60")
    fake_upstream.script({"texts": ["a ", "b ", "c "], "hold_after": 2})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=DEADLINE)
    stream = client.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 1:
                gw.proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                deadline = signalled + DEADLINE
                while gw.log_text().count("stopped accepting connections") < workers:
                    assert time.monotonic() < deadline, gw.log_text()
                    time.sleep(0.01)
                seen = time.monotonic() - signalled
                # every worker has stopped: a connection opened now is refused, not served
                assert refuses_connections(gw.port), f"accepted {seen:.3f} s after SIGTERM"
                assert gw.proc.poll() is None  # the worker with the stream still runs
                assert fake_upstream.release() == 1
    assert received == ["a ", "b ", "c "]
    assert gw.proc.wait(timeout=DEADLINE) == 0
    assert "Traceback" not in gw.log_text()


def test_graceful_timeout_cuts_a_stream_that_does_not_end(start_gateway, fake_upstream):
    gw = start_gateway(GRACEFUL_TIMEOUT="2")
    fake_upstream.script({"texts": ["a ", "b ", "c "], "hold_after": 2})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=DEADLINE)
    stream = client.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    signalled = False
    with pytest.raises(openai.APIConnectionError):  # the worker closed the connection mid-answer
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not signalled:
                gw.proc.send_signal(signal.SIGTERM)
                signalled = True
    try:
        gw.proc.wait(timeout=DEADLINE)  # it did not wait for the held stream forever
    except subprocess.TimeoutExpired:
        pytest.fail("gunicorn did not stop after graceful_timeout")
    finally:
        fake_upstream.release()


def test_idle_keep_alive_connections_do_not_hold_the_shutdown(start_gateway):
    # KEEPALIVE and GRACEFUL_TIMEOUT far above the deadline: only closing idle connections lets it stop in time.
    gw = start_gateway(workers=2, KEEPALIVE="300", GRACEFUL_TIMEOUT="300")
    idle = []
    for _ in range(4):  # as nginx's upstream pool would: connections that served a request and stay open
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=DEADLINE)
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and response.getheader("Connection", "").lower() != "close"
        idle.append(conn)
    gw.proc.send_signal(signal.SIGTERM)
    try:
        assert gw.proc.wait(timeout=DEADLINE) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("idle keep-alive connections kept gunicorn from stopping")
    for conn in idle:
        assert conn.sock.recv(1) == b""  # closed by the server
        conn.close()
    log = gw.log_text()
    assert "Traceback" not in log and "[ERROR]" not in log  # a normal stop (was: cancel_wait_ex, Errno 9)


# gunicorn's shipped config, with the worker held right after the shipped post_fork (gevent not patched yet,
# gunicorn's own signal handlers not installed) until it has caught a stop signal.
HOLD_CONFIG = """
import os, runpy, time
from pathlib import Path

_shipped = runpy.run_path(os.path.join(os.environ["KI2API_REPO"], "config", "gunicorn.conf.py"))
globals().update({k: v for k, v in _shipped.items() if not k.startswith("__")})


def post_fork(server, worker):
    _shipped["post_fork"](server, worker)
    Path(os.environ["HOLD_DIR"], "forked").write_text(str(os.getpid()))
    deadline = time.monotonic() + 20
    while not _shipped["hooks"].stopped_while_booting and time.monotonic() < deadline:
        time.sleep(0.02)
"""


def test_sigterm_while_a_worker_boots_is_not_lost(gateway_env, tmp_path):
    # Until gunicorn installs the worker's own handlers, the worker has the master's: without post_fork's, the
    # SIGTERM the master passes on would be dropped and the master would wait the whole GRACEFUL_TIMEOUT (300 s).
    config = tmp_path / "held.conf.py"
    config.write_text(HOLD_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIRO_", "API_KEY"))}
    env.update(gateway_env, HOST="127.0.0.1", PORT=str(free_port()), WEB_CONCURRENCY="1", GRACEFUL_TIMEOUT="300",
               KI2API_DOTENV=os.devnull, PYTHONPATH=str(REPO), KI2API_REPO=str(REPO), HOLD_DIR=str(tmp_path))
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(config), "wsgi:app"], cwd=str(REPO),
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE
        while not (tmp_path / "forked").exists():  # the worker is forked and held before its own handlers
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "was told to stop while booting" in log_path.read_text()
