"""Gunicorn settings for ki2api: gevent workers, never preloaded (gevent must patch before the app loads)."""
import os

from dotenv import load_dotenv

load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))  # PORT, HOST and WEB_CONCURRENCY may come from .env, which wsgi.py reads only later

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8989')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gevent"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "4000"))
preload_app = False
# The gevent worker heartbeats from its own greenlet, so a long stream does not trip this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "120"))
keepalive = int(os.environ.get("KEEPALIVE", "75"))
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
