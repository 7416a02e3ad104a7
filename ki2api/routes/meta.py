"""GET /openapi.json: the API description (openapi.yaml at the repository root), plus test-only runtime counts.

`/debug/runtime` exists only when KI2API_DEBUG_ENDPOINTS=1 (the tests set it) and needs the API key: live
greenlets, open file descriptors and sockets, resident memory of this worker process.
"""
from __future__ import annotations

import gc
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, jsonify

from ..web.auth import require_key

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
bp = Blueprint("meta", __name__)
debug_bp = Blueprint("debug", __name__, url_prefix="/debug")


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """openapi.yaml parsed once per process."""
    with OPENAPI_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


debug_bp.before_request(require_key)


@debug_bp.get("/runtime")
def runtime() -> Response:
    return jsonify(runtime_counts())


def runtime_counts() -> dict[str, Any]:
    """Live greenlets, open descriptors, sockets and RSS of this process (Linux /proc), and how its garbage
    collector is set (web/gunicorn_hooks.py tunes it in each worker)."""
    import greenlet

    gc.collect()
    greenlets = sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)
    fds = os.listdir("/proc/self/fd")
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return {"pid": os.getpid(), "greenlets": greenlets, "fds": len(fds), "sockets": sockets,
            "rss_kb": _rss_kb(), "gc": {"thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}}


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def register(app: Flask, debug: bool) -> None:
    """Add /openapi.json, and /debug/runtime when `debug` is set."""
    app.register_blueprint(bp)
    if debug:
        app.register_blueprint(debug_bp)
