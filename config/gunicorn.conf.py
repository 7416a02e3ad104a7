"""Gunicorn settings for ki2api: gevent workers, never preloaded (gevent must patch before the app loads).

Every ki2api variable is checked here, in the master, before any worker starts: a bad value stops the start
with one line naming the variable. Settings and hooks come from the package (ki2api.settings declares the
variables, ki2api.web.gunicorn_hooks holds the hooks); both import only the standard library. The worker
class (ki2api.web.worker) is gunicorn's gevent worker with a header deadline, a per-address connection cap
and an immediate stop at SIGTERM; like gunicorn's own, it is loaded by the master without patching.
"""
import os

from dotenv import load_dotenv

from ki2api.settings import ConfigError, Settings
from ki2api.web.gunicorn_hooks import Hooks

load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))  # PORT, HOST and WEB_CONCURRENCY may come from .env

try:
    settings = Settings.from_env(os.environ)
except ConfigError as exc:
    raise SystemExit(f"ki2api: {exc}") from None  # one line, no traceback (gunicorn reports other exceptions)

bind = f"{settings.host}:{settings.port}"
workers = settings.workers
worker_class = "ki2api.web.worker.Worker"  # gunicorn's gevent worker, guarded (see its docstring)
worker_connections = settings.worker_connections
preload_app = False
timeout = settings.gunicorn_timeout
graceful_timeout = settings.graceful_timeout
keepalive = settings.keepalive
accesslog = None  # ki2api writes its own structured line per request (LOG_FORMAT)
# No control socket: nothing uses it, and every instance on a host would share $HOME/.gunicorn/gunicorn.ctl
# (a container run with PUID has HOME=/, not writable).
control_socket_disable = True
errorlog = "-"
loglevel = settings.log_level.lower()

hooks = Hooks(settings)
on_starting = hooks.on_starting
when_ready = hooks.when_ready
post_fork = hooks.post_fork
post_worker_init = hooks.post_worker_init
child_exit = hooks.child_exit
on_exit = hooks.on_exit
