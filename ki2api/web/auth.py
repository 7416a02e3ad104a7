"""Client API-key checks, in constant time, and the one check every keyed route makes."""
from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Mapping

from flask import current_app, g, request

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


@functools.lru_cache(maxsize=256)
def key_label(key: str) -> str:
    """A short, non-reversible name for a client key (`key-` and 8 hex digits), for logs and metrics.

    PBKDF2 with 100,000 rounds, so that a label seen in /metrics or a log cannot cheaply confirm a guessed
    weak key; computed once per key and process (create_app computes the configured keys'; the cache holds only
    keys that passed the check). `python -m ki2api.web.auth < keys.txt` prints the label of each key (one a line).
    """
    digest = hashlib.pbkdf2_hmac("sha256", key.encode("utf-8", "surrogatepass"), b"ki2api client key label",
                                 100_000)
    return f"key-{digest[:4].hex()}"


def require_key() -> None:
    """Raise AuthenticationError (401) unless the request carries one of the configured API keys; note the
    key's label on the request's log line."""
    presented = presented_key(request.headers)
    if key_is_valid(presented, current_app.extensions["ki2api"].settings.api_keys):
        fields = g.get("ki2api_log")
        if fields is not None and presented:
            fields["key"] = key_label(presented)
        return
    g.ki2api_wrong_key = True  # logged as a summary, not a line per request (observability/wrong_keys.py)
    raise AuthenticationError("Invalid or missing API key: send 'Authorization: Bearer <key>' or "
                              "'x-api-key: <key>'", code="invalid_api_key")


if __name__ == "__main__":
    import sys

    for line in sys.stdin:  # keys on standard input, one a line: not in the shell's history or `ps`
        if line.strip():
            sys.stdout.write(f"{key_label(line.strip())}\n")
