"""Client API-key checks, in constant time."""
from __future__ import annotations

import hmac
from typing import Mapping


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer <key>` or `x-api-key: <key>`."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key") or None


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Compare against every configured key without short-circuiting, so timing reveals nothing."""
    given = (presented or "").encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched and presented is not None
