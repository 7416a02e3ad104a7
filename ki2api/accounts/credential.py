"""One Kiro login as data: the Credential, its expiry format, and how it is read from IDE-shaped fields."""
from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Mapping

from .files import StoreError, read_json

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
Source = Literal["file", "env", "accounts"]


@dataclass(frozen=True)
class Credential:
    """One Kiro login. Tokens, secrets and the client id never appear in repr()."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    auth_method: Literal["social", "idc"]
    profile_arn: str | None
    region: str
    client_id: str | None = field(repr=False)
    client_secret: str | None = field(repr=False)
    source: Source

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True if there is no access token, or it is known to expire within `seconds` (negative: already)."""
        if not self.access_token:
            return True
        if self.expires_at is None:  # an env token of unknown age: valid until the upstream rejects it
            return False
        return self.expires_at - (now or datetime.now(timezone.utc)) <= timedelta(seconds=seconds)


def fingerprint(token: str | None) -> str | None:
    """A short one-way digest of a token, to tell logins apart without storing or showing the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else None


def parse_expiry(value: Any) -> datetime | None:
    """An `expiresAt` string as an aware datetime (naive means UTC); None if absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        log.warning("ignoring an unreadable expiresAt %r", value[:40])
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_expiry(moment: datetime) -> str:
    """An aware datetime the way the Kiro IDE writes `expiresAt`: 2025-12-31T02:32:45.144Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def find_client(token_path: Path, client_id_hash: str | None) -> dict[str, Any] | None:
    """The IdC client registration: `<dir>/<clientIdHash>.json`, or without a hash the newest *.json that has one."""
    directory = token_path.parent
    if client_id_hash:
        candidates = [directory / f"{Path(client_id_hash).name}.json"]
    else:
        others = [p for p in directory.glob("*.json") if p.name != token_path.name]
        candidates = sorted(others, key=_modified, reverse=True)
    for path in candidates:
        with contextlib.suppress(StoreError):
            data = read_json(path)
            if data and isinstance(data.get("clientId"), str) and isinstance(data.get("clientSecret"), str):
                return data
    return None


def _modified(path: Path) -> tuple[int, str]:
    """Sort key for "newest": the modification time in ns, then the name, so equal times order the same way."""
    try:
        return path.stat().st_mtime_ns, path.name
    except OSError:
        return 0, path.name


def text_field(value: Any) -> str | None:
    """A non-blank string field, stripped; else None."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def credential_from(raw: Mapping[str, Any], source: Source, client: Mapping[str, Any] | None) -> Credential:
    """Build a Credential from Kiro-IDE-shaped fields (plus the IdC client registration, if any)."""
    method: Literal["social", "idc"] = "idc" if str(raw.get("authMethod", "")).lower() == "idc" else "social"
    client = client or {}
    field_ = text_field
    return Credential(
        access_token=field_(raw.get("accessToken")) or "", refresh_token=field_(raw.get("refreshToken")),
        expires_at=parse_expiry(raw.get("expiresAt")), auth_method=method, profile_arn=field_(raw.get("profileArn")),
        region=field_(raw.get("region")) or DEFAULT_REGION, client_id=field_(client.get("clientId")),
        client_secret=field_(client.get("clientSecret")), source=source)
