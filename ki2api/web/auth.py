"""Client API-key checks, in constant time, and the one check every keyed route makes."""
from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

from flask import current_app, request

from ..errors import AuthenticationError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer <key>` or `x-api-key: <key>`."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key") or None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Compare against every configured key without short-circuiting, so timing reveals nothing.

    Both sides are hashed first: compare_digest is constant-time only for inputs of equal length,
    so comparing raw keys would let response times tell a guesser how long a valid key is.
    """
    given = _digest(presented or "")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, _digest(key))
    return matched and presented is not None


def require_key() -> None:
    """Raise AuthenticationError (401) unless the request carries one of the configured API keys."""
    if not key_is_valid(presented_key(request.headers), current_app.extensions["ki2api"].settings.api_keys):
        raise AuthenticationError("Invalid or missing API key: send 'Authorization: Bearer <key>' or "
                                  "'x-api-key: <key>'", code="invalid_api_key")
