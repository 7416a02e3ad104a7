"""The accounts configuration: the single token file (default), a directory of token files, or an accounts file.

KIRO_ACCOUNTS_FILE holds a JSON list (or {"accounts": [...]}), one object per account:
    {"name": "alice", "tokenFile": "alice/kiro-auth-token.json", "weight": 2}
    {"name": "bob", "refreshToken": "aorAAAAA...", "authMethod": "social"}
    {"name": "carol", "refreshToken": "aorAAAAA...", "authMethod": "IdC", "clientId": "...",
     "clientSecret": "...", "region": "us-east-1", "enabled": false}
    {"name": "dave", "tokenFile": "dave.json", "machine_id": "<64 hex>", "max_concurrency": 2, "rpm": 20}
`tokenFile` (relative to the accounts file) points at a Kiro IDE token file, kept fresh in place; otherwise the
credential is inline (the IDE's field names) and refreshed tokens go to the shared state, not back to this file.
KIRO_TOKEN_DIR: every `*.json` in it is one account's IDE token file, named after the file (IdC client
registrations beside them are recognised and skipped).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import ConfigError, Settings
from .files import StoreError, read_json
from .identity import is_machine_id

log = logging.getLogger(__name__)

DEFAULT_NAME = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
_OWN_KEYS = {"name", "weight", "enabled", "tokenFile", "machine_id", "max_concurrency", "rpm"}
_CREDENTIAL_KEYS = {"accessToken", "refreshToken", "expiresAt", "authMethod", "provider", "profileArn", "region",
                    "clientId", "clientSecret", "clientIdHash", "startUrl"}


@dataclass(frozen=True)
class AccountSpec:
    """One configured account: where its credential is and how much traffic it should take."""

    name: str
    weight: float = 1.0
    enabled: bool = True
    token_file: str | None = None  # an IDE token file
    accounts_file: str | None = None  # the accounts file holding the inline credential
    machine_id: str | None = None  # the id Kiro sees (identity.py); None: ki2api's own for this account
    max_concurrency: int | None = None  # most requests in flight at once on this account (per worker)
    rpm: int | None = None  # most requests started in any 60 s on this account (shared by every process)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The accounts file's entries, each with a name; StoreError naming the file and entry if one is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    entries = data.get("accounts") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise StoreError(f"{path} must hold a JSON list of accounts (or {{\"accounts\": [...]}})")
    return [_entry(path, index, entry) for index, entry in enumerate(entries)]


def _entry(path: Path, index: int, entry: Any) -> dict[str, Any]:
    where = f"{path}, account #{index + 1}"
    if not isinstance(entry, dict):
        raise StoreError(f"{where}: each account must be a JSON object")
    unknown = set(entry) - _OWN_KEYS - _CREDENTIAL_KEYS
    if unknown:
        raise StoreError(f"{where}: unknown fields {sorted(unknown)}; known: {sorted(_OWN_KEYS | _CREDENTIAL_KEYS)}")
    entry = {**entry, "name": entry.get("name", f"account-{index + 1}")}
    if not isinstance(entry["name"], str) or not _NAME.fullmatch(entry["name"]):
        raise StoreError(f"{where}: name must be 1-64 letters, digits or _.@+- (got {entry['name']!r})")
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1000:
        raise StoreError(f"{where}: weight must be a number above 0 and at most 1000")
    if not isinstance(entry.get("enabled", True), bool):
        raise StoreError(f"{where}: enabled must be true or false")
    if "machine_id" in entry and not is_machine_id(entry["machine_id"]):
        raise StoreError(f"{where}: machine_id must be 64 lower-case hex digits (as the Kiro IDE's)")
    for key in ("max_concurrency", "rpm"):
        limit = entry.get(key)
        if key in entry and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise StoreError(f"{where}: {key} must be a whole number of at least 1")
    if "tokenFile" in entry:
        if not isinstance(entry["tokenFile"], str) or set(entry) & _CREDENTIAL_KEYS:
            raise StoreError(f"{where}: give either tokenFile (a path) or the credential fields, not both")
    elif not isinstance(entry.get("refreshToken"), str) and not isinstance(entry.get("accessToken"), str):
        raise StoreError(f"{where}: needs tokenFile or at least refreshToken")
    return entry


def _from_accounts_file(path: Path) -> list[AccountSpec]:
    specs = []
    for entry in read_entries(path):
        token_file = entry.get("tokenFile")
        if token_file:
            resolved = Path(token_file).expanduser()
            token_file = str(resolved if resolved.is_absolute() else path.parent / resolved)
        specs.append(AccountSpec(entry["name"], float(entry.get("weight", 1)), entry.get("enabled", True),
                                 token_file=token_file, accounts_file=None if token_file else str(path),
                                 machine_id=entry.get("machine_id"), max_concurrency=entry.get("max_concurrency"),
                                 rpm=entry.get("rpm")))
    return specs


def _is_registration(path: Path) -> bool:
    """An IdC client registration (clientId/clientSecret, no tokens) rather than a login."""
    try:
        data = read_json(path) or {}
    except StoreError:
        return False  # unreadable: keep it as an account, so /health says what is wrong with it
    return "clientSecret" in data and not ({"accessToken", "refreshToken"} & data.keys())


def _from_token_dir(directory: Path) -> list[AccountSpec]:
    if not directory.is_dir():
        raise StoreError(f"{directory} is not a directory")
    files = [p for p in sorted(directory.glob("*.json")) if not p.name.startswith(".") and not _is_registration(p)]
    if not files:
        raise StoreError(f"{directory} holds no token files (*.json)")
    return [AccountSpec(re.sub(r"[^A-Za-z0-9_.@+-]", "_", p.stem)[:64] or "account", token_file=str(p))
            for p in files]


def account_specs(settings: Settings) -> list[AccountSpec]:
    """The configured accounts; ConfigError naming the variable if the pool's configuration is unusable."""
    specs: list[AccountSpec] = []
    for variable, value, reader in (("KIRO_ACCOUNTS_FILE", settings.accounts_file, _from_accounts_file),
                                    ("KIRO_TOKEN_DIR", settings.token_dir, _from_token_dir)):
        if value:
            try:
                specs += reader(Path(value).expanduser())
            except StoreError as exc:
                raise ConfigError(f"{variable}: {exc}") from None
    if not specs:
        return [AccountSpec(DEFAULT_NAME, token_file=settings.token_file)]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"KIRO_ACCOUNTS_FILE/KIRO_TOKEN_DIR: account names must be unique; repeated: {duplicates}")
    if not any(spec.enabled for spec in specs):
        log.warning("every configured Kiro account is disabled (enabled: false); requests will fail")
    return specs

