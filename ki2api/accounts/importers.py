"""Logins that exist already, read into account entries (accounts-file fields) for the account store.

Sources: the Kiro IDE's token file (plus its IdC client registration beside it), kiro-cli's SQLite database
(table `auth_kv`), a Kiro API key (`ksk_...`), and the JSON export of account managers. Shapes accepted for an
export (docs/accounts.md, "import"): a list of accounts, or an object holding one under `accounts`,
`credentials` or `data`; each account with the IDE's camelCase fields or their snake_case twins, at its top or
nested under `credentials`/`token`/`tokens`, including kiro.rs's `kiroApiKey`.
"""
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .credential import find_client, format_expiry, parse_expiry, text_field
from .files import StoreError, read_json

API_KEY = re.compile(r"ksk_[A-Za-z0-9_\-.]{8,}")
SQLITE_MAGIC = b"SQLite format 3\x00"
KIRO_CLI_SOCIAL = "kirocli:social:token"
KIRO_CLI_OIDC = "kirocli:odic:token"
KIRO_CLI_REGISTRATIONS = ("kirocli:odic:device-registration", "codewhisperer:odic:device-registration")
_FIELDS = {  # entry field <- the names it goes by in the sources
    "accessToken": ("accessToken", "access_token"), "refreshToken": ("refreshToken", "refresh_token"),
    "expiresAt": ("expiresAt", "expires_at"), "authMethod": ("authMethod", "auth_method", "auth", "authType"),
    "provider": ("provider",), "profileArn": ("profileArn", "profile_arn"), "region": ("region", "authRegion"),
    "clientId": ("clientId", "client_id"), "clientSecret": ("clientSecret", "client_secret"),
    "startUrl": ("startUrl", "start_url"),
}
_NESTED = ("credentials", "token", "tokens")
_LABELS = ("name", "label", "email", "username")


@dataclass(frozen=True)
class Found:
    """One login found in a source: its entry, a suggested name, and how it came in ("import:kiro-cli")."""

    entry: dict[str, Any]
    name: str | None
    via: str


def api_key(key: str) -> Found:
    """A Kiro API key: the bearer itself, never refreshed."""
    key = key.strip()
    if not API_KEY.fullmatch(key):
        raise StoreError("a Kiro API key starts with ksk_ and holds letters, digits, _ - and . only")
    return Found({"accessToken": key, "authMethod": "api_key"}, "api-key", "import:api-key")


def token_file(path: Path) -> Found:
    """The Kiro IDE's token file; for an IdC login, its client registration from the same directory."""
    data = read_json(path)
    if data is None:
        raise StoreError(f"{path} does not exist")
    entry = _normalise(data)
    if not entry.get("refreshToken"):
        raise StoreError(f"{path} holds no refreshToken: is it a Kiro token file?")
    if str(entry.get("authMethod", "")).lower() == "idc" and not entry.get("clientSecret"):
        client = find_client(path, text_field(data.get("clientIdHash")))
        if client is None:
            raise StoreError(f"{path} is an IdC login, but its client registration (<clientIdHash>.json) is "
                             "not beside it: copy both files")
        entry.update(clientId=client["clientId"], clientSecret=client["clientSecret"])
    return Found(entry, None, "import:token-file")


def kiro_cli(path: Path) -> list[Found]:
    """kiro-cli's database: its social login and its OIDC login (with the device registration), if present."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = dict(db.execute("SELECT key, value FROM auth_kv").fetchall())
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read kiro-cli's auth_kv table in {path} ({exc})") from None
    found = []
    social = _json_value(rows.get(KIRO_CLI_SOCIAL), path)
    if social:
        found.append(Found({**_normalise(social), "authMethod": "social"}, "kiro-cli-social", "import:kiro-cli"))
    oidc = _json_value(rows.get(KIRO_CLI_OIDC), path)
    if oidc:
        registration = next((_json_value(rows[k], path) for k in KIRO_CLI_REGISTRATIONS if rows.get(k)), None)
        if not registration:
            raise StoreError(f"{path}: the OIDC login has no device registration (client id and secret)")
        entry = {**_normalise(registration), **_normalise(oidc), "authMethod": "IdC"}
        found.append(Found(entry, "kiro-cli", "import:kiro-cli"))
    if not found:
        raise StoreError(f"{path} holds no kiro-cli login ({KIRO_CLI_SOCIAL} or {KIRO_CLI_OIDC})")
    return [f for f in found if f.entry.get("refreshToken")] or _no_refresh(path)


def export(data: Any, where: str) -> list[Found]:
    """An account manager's JSON export (the shapes in this module's docstring)."""
    items = data
    if isinstance(data, dict):
        items = next((data[k] for k in ("accounts", "credentials", "data") if isinstance(data.get(k), list)), [data])
    if not isinstance(items, list) or not items:
        raise StoreError(f"{where} holds no accounts")
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise StoreError(f"{where}, account #{index + 1}: not a JSON object")
        entry = _normalise(item)
        key = text_field(item.get("kiroApiKey")) or text_field(item.get("apiKey")) or text_field(item.get("api_key"))
        if key:
            found.append(Found(api_key(key).entry, _label(item), "import:export"))
        elif entry.get("refreshToken"):
            found.append(Found(entry, _label(item), "import:export"))
        else:
            raise StoreError(f"{where}, account #{index + 1}: no refreshToken (or kiroApiKey)")
    return found


def sniff(path: Path) -> list[Found]:
    """Whatever `path` is: a kiro-cli database, an IDE token file, or an export."""
    try:
        head = path.read_bytes()[:16]
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if head == SQLITE_MAGIC:
        return kiro_cli(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise StoreError(f"{path} is neither JSON nor a SQLite database") from None
    if isinstance(data, dict) and ("refreshToken" in data or "accessToken" in data):
        return [token_file(path)]
    return export(data, str(path))


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The entry fields found in `raw` (camelCase or snake_case, at the top or nested), expiry in the IDE's form."""
    merged: dict[str, Any] = dict(raw)
    for key in _NESTED:
        if isinstance(raw.get(key), dict):
            merged = {**raw[key], **{k: v for k, v in raw.items() if k not in _NESTED}}
    entry: dict[str, Any] = {}
    for target, names in _FIELDS.items():
        value = next((text_field(merged.get(n)) for n in names if text_field(merged.get(n))), None)
        if value is not None:
            entry[target] = value
    expiry = parse_expiry(entry.get("expiresAt")) if "expiresAt" in entry else None
    if "expiresAt" in entry:
        entry["expiresAt"] = format_expiry(expiry or datetime.fromtimestamp(0, timezone.utc))
    if str(entry.get("authMethod", "")).lower() in ("idc", "builderid", "builder-id", "enterprise"):
        entry["authMethod"] = "IdC"
    return entry


def _json_value(text: Any, path: Path) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise StoreError(f"{path}: an auth_kv value is not JSON") from None
    return data if isinstance(data, dict) else None


def _label(item: Mapping[str, Any]) -> str | None:
    label = next((text_field(item.get(k)) for k in _LABELS if text_field(item.get(k))), None)
    return re.sub(r"[^A-Za-z0-9_.@+-]", "-", label)[:64].strip("-.") or None if label else None


def _no_refresh(path: Path) -> list[Found]:
    raise StoreError(f"{path}: the kiro-cli login holds no refresh token")
