"""Trusting X-Forwarded-For / X-Forwarded-Proto from the reverse proxies in front (TRUSTED_PROXIES)."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def trust_proxies(app: Flask, count: int) -> None:
    """With `count` proxies in front, take the client address and scheme from their headers; 0 trusts none.

    Each proxy appends to X-Forwarded-For, so the address `count` entries from the right is the one the
    outermost trusted proxy saw; anything a client wrote further left is ignored.
    """
    if count > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)  # type: ignore[method-assign]
