"""gunicorn's server hooks (ki2api.web.gunicorn_hooks), called with stand-ins for gunicorn's server and worker."""
from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ki2api.settings import KEY_WARNED_ENV, Settings
from ki2api.web.gunicorn_hooks import METRICS_ENV, STOP_SIGNALS, Hooks, listening, metrics_dir, shut_down
from tests.helpers.gateway import REPO
from tests.helpers.gunicorn_log import Log


def server(listeners=()) -> SimpleNamespace:
    return SimpleNamespace(log=Log(), LISTENERS=list(listeners))


def test_metrics_dir_is_fresh_and_removes_those_of_masters_gone(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / f"prometheus-{gone}").mkdir()
    (tmp_path / f"prometheus-{os.getppid()}").mkdir()  # a running master's: kept
    (tmp_path / f"prometheus-{os.getpid()}").mkdir()
    (tmp_path / f"prometheus-{os.getpid()}" / "old.db").write_text("x")
    path = metrics_dir(str(tmp_path), os.getpid())
    assert path == str(tmp_path / f"prometheus-{os.getpid()}") and os.listdir(path) == []
    assert not (tmp_path / f"prometheus-{gone}").exists() and (tmp_path / f"prometheus-{os.getppid()}").exists()


def test_on_starting_makes_a_directory_the_workers_inherit_and_on_exit_removes_it(tmp_path):
    environ: dict[str, str] = {}
    hooks = Hooks(Settings(state_dir=str(tmp_path / "state")), environ)
    master = server()
    hooks.on_starting(master)
    path = environ[METRICS_ENV]
    assert os.path.isdir(path) and path.startswith(str(tmp_path / "state" / "prometheus-"))
    hooks.on_exit(master)
    assert not os.path.exists(path)


def test_on_starting_only_empties_a_directory_the_operator_chose(tmp_path):
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    for name in ("a.db", "requests.jsonl", "keep.txt"):
        (chosen / name).write_text("x")
    hooks = Hooks(Settings(state_dir=str(tmp_path / "state")), {METRICS_ENV: str(chosen)})
    hooks.on_starting(server())
    hooks.on_exit(server())
    assert sorted(os.listdir(chosen)) == ["keep.txt"] and not (tmp_path / "state").exists()


def test_on_starting_falls_back_to_a_temporary_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    environ: dict[str, str] = {}
    hooks, master = Hooks(Settings(state_dir=str(blocker)), environ), server()
    hooks.on_starting(master)
    assert os.path.isdir(environ[METRICS_ENV]) and master.log.lines[0][0] == "warning"
    hooks.on_exit(master)
    assert not os.path.exists(environ[METRICS_ENV])


def test_listening_keeps_tcp_listeners_only(tmp_path):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "s"))
    try:
        assert listening([tcp, unix]) == [("127.0.0.1", tcp.getsockname()[1])]
    finally:
        tcp.close()
        unix.close()


def test_when_ready_warns_once_for_the_real_listeners_and_tells_the_workers():
    environ: dict[str, str] = {}
    listener = SimpleNamespace(getsockname=lambda: ("0.0.0.0", 9000))
    master = server([listener])
    Hooks(Settings(), environ).when_ready(master)
    [(level, line)] = master.log.lines
    assert level == "warning" and line.startswith("SECURITY:") and "0.0.0.0:9000" in line
    assert environ[KEY_WARNED_ENV] == "1"
    quiet = server([listener])
    Hooks(Settings(api_keys=("own",)), {}).when_ready(quiet)
    assert quiet.log.lines == []


def test_when_ready_warns_about_a_deprecated_variable_in_the_environment():
    master = server()
    Hooks(Settings(api_keys=("own",)), {"SSE_PING_INTERVAL": "10"}).when_ready(master)
    assert master.log.lines == [("warning", "SSE_PING_INTERVAL is deprecated: set STREAM_KEEPALIVE instead")]


@pytest.fixture
def saved_signals():
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_stop_signal_while_booting_stops_the_worker_once_booted(saved_signals):
    hooks = Hooks(Settings(gc_thresholds=None), {})
    worker = SimpleNamespace(pid=123, alive=True, log=Log())
    hooks.post_fork(server(), worker)
    os.kill(os.getpid(), signal.SIGTERM)  # remembered, not acted on
    assert hooks.stopped_while_booting == [signal.SIGTERM]
    hooks.post_worker_init(worker)
    assert worker.alive is False and worker.log.lines == [("info", "worker 123 was told to stop while booting; "
                                                                   "stopping")]


def test_post_worker_init_tunes_the_collector_and_tracks_idle_connections(monkeypatch):
    import gevent

    spawned = []
    monkeypatch.setattr(gevent, "spawn", spawned.append)  # the sweeper is not started in the test process
    before = gc.get_threshold()
    handled = []
    worker = SimpleNamespace(pid=1, alive=True, log=Log(), handle=lambda *a: handled.append(("handle", a)),
                             handle_request=lambda *a: handled.append(("request", a)) or "done")
    try:
        Hooks(Settings(gc_thresholds=(1234, 5, 6)), {}).post_worker_init(worker)
        assert gc.get_threshold() == (1234, 5, 6)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    assert len(spawned) == 1
    assert worker.handle("listener", "client", "addr") is None
    assert worker.handle_request("name", "req", "client", "addr") == "done"
    assert [kind for kind, _ in handled] == ["handle", "request"]


def test_shut_down_closes_both_ways_and_forgets():
    left, right = socket.socketpair()
    try:
        idle = {left}
        shut_down(idle)
        assert idle == set() and right.recv(1) == b""
        shut_down({left})  # already shut down: no error
    finally:
        left.close()
        right.close()


def test_shut_down_gives_a_greenlet_waiting_to_read_an_end_of_stream_not_an_error():
    # gevent's own socket.shutdown wakes the reader with cancel_wait_ex ([Errno 9] File descriptor was closed
    # in another greenlet), which gunicorn logs as an ERROR with a traceback at every stop.
    import gevent
    from gevent import socket as gsocket

    left, right = gsocket.socketpair()
    try:
        reader = gevent.spawn(left.recv, 1)
        gevent.sleep(0)  # the reader is waiting
        shut_down({left})
        assert reader.get(timeout=5) == b"" and right.recv(1) == b""
    finally:
        left.close()
        right.close()


@pytest.mark.parametrize("proxies, cap", [(0, 9), (1, 0)])
def test_post_worker_init_guards_ki2apis_worker(monkeypatch, proxies, cap):
    import gevent

    monkeypatch.setattr(gevent, "spawn", lambda *a: None)
    guarded = []
    worker = SimpleNamespace(pid=1, alive=True, log=Log(), handle=None, handle_request=None,
                             guard=lambda *a: guarded.append(a))
    settings = Settings(gc_thresholds=None, header_timeout=3.0, max_connections_per_address=9,
                        trusted_proxies=proxies)
    Hooks(settings, {}).post_worker_init(worker)
    assert guarded == [(3.0, cap)]  # behind a proxy every connection is the proxy's: no cap


def test_child_exit_marks_the_worker_dead_only_in_multiprocess_mode(tmp_path, monkeypatch):
    import prometheus_client.multiprocess as multiprocess

    dead = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", dead.append)
    Hooks(Settings(), {}).child_exit(server(), SimpleNamespace(pid=7))
    Hooks(Settings(), {METRICS_ENV: str(tmp_path)}).child_exit(server(), SimpleNamespace(pid=8))
    assert dead == [8]


def test_the_hooks_module_loads_no_web_library():
    code = ("import sys, ki2api.web.gunicorn_hooks; print(sorted(m for m in ('flask', 'werkzeug', 'requests', "
            "'gevent', 'prometheus_client', 'ssl') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_the_shipped_config_binds_every_hook(monkeypatch):
    import runpy

    monkeypatch.setenv("KI2API_DOTENV", os.devnull)
    monkeypatch.setenv("WORKER_CONNECTIONS", "77")
    config = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    assert config["worker_connections"] == 77 and not config["preload_app"]
    assert config["worker_class"] == "ki2api.web.worker.Worker"
    for name in ("on_starting", "when_ready", "post_fork", "post_worker_init", "child_exit", "on_exit"):
        assert config[name] == getattr(config["hooks"], name)
