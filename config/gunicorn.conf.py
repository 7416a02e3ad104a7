"""Gunicorn settings for ki2api: gevent workers, never preloaded (gevent must patch before the app loads).

Every ki2api variable is checked here, in the master, before any worker starts: a bad value stops the start
with one line naming the variable (ki2api.settings, which imports only the standard library). Once the
master listens, it warns about the public default key for the addresses it really listens on (`-b` included).
Also: a fresh Prometheus multiprocess directory per server start (so /metrics adds up every worker, and the
status page lists every worker's recent requests), the bookkeeping for a worker that exits, and a graceful
stop: on SIGTERM the listening socket closes at once and streams still open get up to GRACEFUL_TIMEOUT
seconds to finish; a worker told to stop while it boots stops once booted.
"""
import glob
import os
import shutil
import signal
import tempfile

from dotenv import load_dotenv

from ki2api import KEY_WARNED_ENV
from ki2api.settings import ConfigError, Settings, env_int

# The worker's garbage collector, chosen by measurement (BENCHMARKS.md, "Garbage collection pauses"): with
# Python's defaults (700, 10, 10) a worker holding 1,000 streams made a full collection every few seconds,
# each stopping every stream for 100-200 ms. Young collections every 10,000 allocations and a full one every
# 50 x 100 of them (minutes apart under load, seconds of work still freeing every cycle in the end) keep
# pauses rare; freezing what the app built at start keeps it out of every collection.
GC_THRESHOLDS = (10_000, 50, 100)


def gc_setting(environ) -> tuple[int, int, int] | None:
    """GC_THRESHOLDS: unset, the tuned thresholds above (and the app frozen); `python`, Python's own collector
    left as it is (None), to measure the difference; else three comma-separated positive integers."""
    raw = environ.get("GC_THRESHOLDS", "").strip()
    if not raw:
        return GC_THRESHOLDS
    if raw.lower() == "python":
        return None
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError("GC_THRESHOLDS must be 'python' or three positive integers like 10000,50,100, "
                          f"got {raw!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))  # PORT, HOST and WEB_CONCURRENCY may come from .env, which wsgi.py reads only later

try:
    _settings = Settings.from_env(os.environ)
    worker_connections = env_int(os.environ, "WORKER_CONNECTIONS", 4000, minimum=1)
    # The gevent worker heartbeats from its own greenlet, so a long stream does not trip this.
    timeout = env_int(os.environ, "GUNICORN_TIMEOUT", 60)
    # SIGTERM: stop accepting, let open streams run this long, then cut them. Docker's stop_grace_period must be longer.
    graceful_timeout = env_int(os.environ, "GRACEFUL_TIMEOUT", 120)
    keepalive = env_int(os.environ, "KEEPALIVE", 75)
    gc_thresholds = gc_setting(os.environ)
except ConfigError as exc:
    raise SystemExit(f"ki2api: {exc}") from None  # one line, no traceback (gunicorn reports other exceptions)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "gevent"
preload_app = False
accesslog = None  # ki2api writes its own structured line per request (LOG_FORMAT)
# No gunicornc control socket: nothing uses it, and every instance on a host would share $HOME/.gunicorn/gunicorn.ctl
# (a container run with PUID has HOME=/, not writable).
control_socket_disable = True
errorlog = "-"
loglevel = _settings.log_level.lower()

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made_here = []  # the metrics directory on_starting created, removed again by on_exit
_stop_while_booting = []  # in a worker: stop signals that came before gunicorn installed the worker's handlers


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


def on_starting(server):
    """Master, once per start (not on reload): set up the metrics directory every worker inherits."""
    given = os.environ.get(METRICS_ENV, "").strip()
    if given:  # the operator chose the directory: only empty it of a previous run's files
        os.makedirs(given, exist_ok=True)
        for pattern in ("*.db", "*.jsonl"):  # metrics, and the status page's recent requests (ki2api/recent.py)
            for stale in glob.glob(os.path.join(given, pattern)):
                os.remove(stale)
        return
    state = os.path.expanduser(os.environ.get("KI2API_STATE_DIR", "").strip() or "~/.cache/ki2api")
    try:
        path = metrics_dir(state, os.getpid())
    except OSError as exc:
        server.log.warning("metrics: cannot use %s (%s); using a temporary directory", state, exc.strerror)
        path = tempfile.mkdtemp(prefix="ki2api-prometheus-")
    os.environ[METRICS_ENV] = path
    _made_here.append(path)
    server.log.info("metrics: multiprocess directory %s", path)


def listening(listeners) -> list:
    """(host, port) of each TCP listener; unix sockets are left out (reachable on this machine only)."""
    found = []
    for listener in listeners:
        address = listener.getsockname()
        if isinstance(address, tuple):
            found.append((address[0], address[1]))
    return found


def when_ready(server):
    """Master, listening: warn about the default key once, for the real listeners (HOST or `-b`), not per worker."""
    warning = _settings.default_key_warning(listening(server.LISTENERS))
    if warning:
        server.log.warning("%s", warning)
    os.environ[KEY_WARNED_ENV] = "1"  # inherited by the workers: create_app does not warn about HOST again


def post_fork(server, worker):
    """Worker, just forked: remember a stop signal (SIGTERM, SIGINT, SIGQUIT) that comes while it boots.

    Until gunicorn installs the worker's own handlers (after gevent's patching), the worker still has the
    master's, which only queue the signal in this process's copy of the master: the stop would be lost and
    the master would wait the whole GRACEFUL_TIMEOUT for this worker. post_worker_init acts on it instead.
    """
    def remember(signum, frame):
        _stop_while_booting.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, remember)


def post_worker_init(worker):
    """Worker: tune the garbage collector for the loaded app; stop at once if told to while booting; once SIGTERM
    arrives, close idle keep-alive connections.

    gunicorn would wait up to KEEPALIVE seconds for each idle one (nginx keeps a pool of them) before the
    worker may exit; requests in progress and open streams are left to finish within graceful_timeout.
    """
    import gc
    import socket

    import gevent

    if _stop_while_booting:
        worker.log.info("worker %s was told to stop while booting; stopping", worker.pid)
        worker.alive = False
        return
    if gc_thresholds is not None:
        gc.freeze()
        gc.set_threshold(*gc_thresholds)

    idle = set()  # client sockets between two requests
    handle, handle_request = worker.handle, worker.handle_request

    def tracked_handle(listener, client, addr):
        idle.add(client)
        try:
            handle(listener, client, addr)
        finally:
            idle.discard(client)

    def tracked_request(listener_name, req, client, addr):
        idle.discard(client)
        try:
            return handle_request(listener_name, req, client, addr)
        finally:
            idle.add(client)

    def close_idle_when_stopping():
        while worker.alive:
            gevent.sleep(0.2)
        while True:  # until the worker exits: connections may turn idle while their last request ends
            for client in list(idle):
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                idle.discard(client)
            gevent.sleep(0.2)

    worker.handle, worker.handle_request = tracked_handle, tracked_request
    gevent.spawn(close_idle_when_stopping)


def child_exit(server, worker):
    """Master, whenever a worker exits: drop its live gauges (streams in flight) so they stop counting."""
    from prometheus_client import multiprocess

    if os.environ.get(METRICS_ENV):
        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Master, at shutdown: remove the metrics directory ki2api made (not one the operator chose)."""
    for path in _made_here:
        shutil.rmtree(path, ignore_errors=True)
