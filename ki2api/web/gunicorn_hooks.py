"""gunicorn's server hooks for ki2api (config/gunicorn.conf.py binds them): metrics directory, start-up key
warning, stop signals while a worker boots, the worker's garbage collector, idle keep-alives at shutdown.

Imported by gunicorn's master before it forks: standard library only at import time; gevent and
prometheus_client are imported inside the hooks that run in a worker or after a worker exits.

    on_starting       master, once per start: a fresh Prometheus multiprocess directory for every worker
    when_ready        master, listening: the default-key warning, once, for the real listeners; deprecated
                      variables
    post_fork         worker, just forked: remember a stop signal that comes while it boots
    post_worker_init  worker, app loaded: act on that signal; gunicorn's own errors in JSON; tune gc; guard
                      connections (ki2api.web.worker); close idle connections once stopping
    child_exit        master, a worker exited: drop its live gauges
    on_exit           master, at shutdown: remove the metrics directory made at start
"""
from __future__ import annotations

import gc
import glob
import os
import shutil
import signal
import socket
import tempfile
from typing import Any, Iterable

from ..settings import KEY_WARNED_ENV, Settings, deprecated_in_use

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_IDLE_POLL = 0.2  # seconds between sweeps of idle keep-alive connections once the worker stops


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_dir(state_dir: str, pid: int) -> str:
    """Empty `<state_dir>/prometheus-<pid>` for this server start; remove those of masters no longer running."""
    os.makedirs(state_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(state_dir, "prometheus-*")):
        suffix = stale.rsplit("-", 1)[-1]
        if suffix.isdigit() and (int(suffix) == pid or not _pid_alive(int(suffix))):
            shutil.rmtree(stale, ignore_errors=True)
    path = os.path.join(state_dir, f"prometheus-{pid}")
    os.makedirs(path, mode=0o700)
    return path


def listening(listeners: Iterable[Any]) -> list[tuple[str, int]]:
    """(host, port) of each TCP listener; unix sockets are left out (reachable on this machine only)."""
    found = []
    for listener in listeners:
        address = listener.getsockname()
        if isinstance(address, tuple):
            found.append((address[0], address[1]))
    return found


class Hooks:
    """The hooks of one gunicorn server, for `settings`; each method is one of gunicorn's server hooks."""

    def __init__(self, settings: Settings, environ: Any = os.environ) -> None:
        self.settings = settings
        self.environ = environ
        self.made_here: list[str] = []  # the metrics directory on_starting created, removed again by on_exit
        self.stopped_while_booting: list[int] = []  # in a worker: stop signals before gunicorn's own handlers

    def on_starting(self, server: Any) -> None:
        """Master, once per start (not on reload): set up the metrics directory every worker inherits."""
        given = self.environ.get(METRICS_ENV, "").strip()
        if given:  # the operator chose the directory: only empty it of a previous run's files
            os.makedirs(given, exist_ok=True)
            for pattern in ("*.db", "*.jsonl"):  # metrics, and the status page's recent requests
                for stale in glob.glob(os.path.join(given, pattern)):
                    os.remove(stale)
            return
        try:
            path = metrics_dir(self.settings.state_dir, os.getpid())
        except OSError as exc:
            server.log.warning("metrics: cannot use %s (%s); using a temporary directory", self.settings.state_dir,
                               exc.strerror)
            path = tempfile.mkdtemp(prefix="ki2api-prometheus-")
        self.environ[METRICS_ENV] = path
        self.made_here.append(path)
        server.log.info("metrics: multiprocess directory %s", path)

    def when_ready(self, server: Any) -> None:
        """Master, listening: warn about the default key once, for the real listeners (HOST or `-b`), and about
        each deprecated variable set."""
        warning = self.settings.default_key_warning(listening(server.LISTENERS))
        if warning:
            server.log.warning("%s", warning)
        for deprecated in deprecated_in_use(self.environ):
            server.log.warning("%s", deprecated)
        self.environ[KEY_WARNED_ENV] = "1"  # inherited by the workers: create_app does not warn about HOST again

    def post_fork(self, server: Any, worker: Any) -> None:
        """Worker, just forked: remember a stop signal (SIGTERM, SIGINT, SIGQUIT) that comes while it boots.

        Until gunicorn installs the worker's own handlers (after gevent's patching), the worker still has the
        master's, which only queue the signal in this process's copy of the master: the stop would be lost and
        the master would wait the whole GRACEFUL_TIMEOUT for this worker. post_worker_init acts on it instead.
        """
        def remember(signum: int, frame: Any) -> None:
            self.stopped_while_booting.append(signum)

        for signum in STOP_SIGNALS:
            signal.signal(signum, remember)

    def post_worker_init(self, worker: Any) -> None:
        """Worker, app loaded: stop at once if told to while booting; else tune the garbage collector for the
        loaded app and, once the worker is told to stop, close its idle keep-alive connections."""
        if self.stopped_while_booting:
            worker.log.info("worker %s was told to stop while booting; stopping", worker.pid)
            worker.alive = False
            return
        from gunicorn import util

        from .protocol_errors import install

        install(util)  # gunicorn's own 400/414/431 answers in JSON, like every other error of the port
        if self.settings.gc_thresholds is not None:
            gc.freeze()  # what the app built at start stays out of every collection
            gc.set_threshold(*self.settings.gc_thresholds)
        if hasattr(worker, "guard"):  # ki2api's worker class (config/gunicorn.conf.py), not `-k gevent`
            behind_proxy = self.settings.trusted_proxies > 0  # every peer is the proxy: the cap is the proxy's
            worker.guard(self.settings.header_timeout,
                         0 if behind_proxy else self.settings.max_connections_per_address)
        close_idle_on_stop(worker)

    def child_exit(self, server: Any, worker: Any) -> None:
        """Master, whenever a worker exits: drop its live gauges (streams in flight) so they stop counting."""
        from prometheus_client import multiprocess

        if self.environ.get(METRICS_ENV):
            multiprocess.mark_process_dead(worker.pid)

    def on_exit(self, server: Any) -> None:
        """Master, at shutdown: remove the metrics directory ki2api made (not one the operator chose)."""
        for path in self.made_here:
            shutil.rmtree(path, ignore_errors=True)


def close_idle_on_stop(worker: Any) -> set[Any]:
    """Track the worker's client sockets between two requests; once it stops, shut those down (returned set).

    gunicorn would wait up to KEEPALIVE seconds for each idle one (nginx keeps a pool of them) before the
    worker may exit; requests in progress and open streams are left to finish within GRACEFUL_TIMEOUT.
    """
    import gevent

    idle: set[Any] = set()
    handle, handle_request = worker.handle, worker.handle_request

    def tracked_handle(listener: Any, client: Any, addr: Any) -> None:
        idle.add(client)
        try:
            handle(listener, client, addr)
        finally:
            idle.discard(client)

    def tracked_request(listener_name: Any, req: Any, client: Any, addr: Any) -> Any:
        idle.discard(client)
        try:
            return handle_request(listener_name, req, client, addr)
        finally:
            idle.add(client)

    def close_idle_when_stopping() -> None:
        while worker.alive:
            gevent.sleep(_IDLE_POLL)
        while True:  # until the worker exits: connections may turn idle while their last request ends
            shut_down(idle)
            gevent.sleep(_IDLE_POLL)

    worker.handle, worker.handle_request = tracked_handle, tracked_request
    gevent.spawn(close_idle_when_stopping)
    return idle


def shut_down(idle: set[Any]) -> None:
    """Shut down each socket in `idle` (both ways: the client sees the connection end) and forget it.

    The shutdown goes to the operating system's socket, through a duplicate descriptor: gevent's own
    `socket.shutdown` also wakes the greenlet waiting to read with `cancel_wait_ex` ("[Errno 9] File
    descriptor was closed in another greenlet"), which gunicorn logs as an ERROR with a traceback. Shut
    down underneath it, the greenlet reads an ordinary end of stream and closes the connection quietly.
    """
    for client in list(idle):
        idle.discard(client)
        try:
            with socket.socket(fileno=os.dup(client.fileno())) as raw:
                raw.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed (fileno -1) or shut down
            pass
