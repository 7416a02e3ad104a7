"""Device-flow logins started from the status page and not finished yet, shared by every worker.

One file per login, `<KI2API_STATE_DIR>/logins/<id>.json` (mode 0600: it holds the client secret and the device
code), so that whichever worker the page's next poll reaches can continue it. Each poll makes at most one
CreateToken call, and none before the interval the service asked for has passed since the last one.
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import requests

from .files import StoreError, read_json, write_json_atomic
from .oidc import SLOW_DOWN_STEP, Client, Device, DeviceFlow, LoginError, base_url

DIRECTORY = "logins"
_ID_LENGTH = 16


class PendingLogins:
    """The status page's device-flow logins in progress."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.directory = Path(state_dir).expanduser() / DIRECTORY

    def start(self, session: requests.Session, region: str, start_url: str, url: str | None) -> dict[str, Any]:
        """Register, start the device authorization, remember it; what the page shows (no secret)."""
        self.sweep()
        flow = DeviceFlow(session, region, start_url, url=url)
        client = flow.register()
        device = flow.start(client)
        login_id = secrets.token_hex(_ID_LENGTH // 2)
        self._save(login_id, {"region": region, "start_url": start_url, "url": flow.url,
                              "client": [client.client_id, client.client_secret, client.expires_at],
                              "device": device.device_code, "interval": device.interval,
                              "deadline": time.time() + device.expires_in, "next_poll": time.time() + device.interval})
        return {"id": login_id, "user_code": device.user_code, "verification_uri": device.verification_uri,
                "verification_uri_complete": device.verification_uri_complete, "expires_in": device.expires_in,
                "interval": device.interval}

    def poll(self, session: requests.Session, login_id: str) -> tuple[str, dict[str, Any] | None, DeviceFlow | None]:
        """One step: ("pending", None, None), or ("done", token entry, flow); LoginError if it failed or expired."""
        record = self._load(login_id)
        now = time.time()
        if now > record["deadline"]:
            self.forget(login_id)
            raise LoginError("the code expired before it was approved; start again")
        if now < record["next_poll"]:
            return "pending", None, None
        client = Client(*record["client"])
        flow = DeviceFlow(session, record["region"], record["start_url"], url=record["url"])
        device = Device(record["device"], "", "", "", record["deadline"] - now, record["interval"])
        try:
            answer = flow.poll_once(client, device)
        except LoginError:
            self.forget(login_id)
            raise
        if answer is None or answer == "slow_down":
            interval = record["interval"] + (SLOW_DOWN_STEP if answer == "slow_down" else 0)
            self._save(login_id, {**record, "interval": interval, "next_poll": now + interval})
            return "pending", None, None
        self.forget(login_id)
        return "done", flow.entry(client, answer), flow

    def sweep(self) -> None:
        """Delete the logins abandoned past their code's expiry (their secrets with them)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.json"):
            try:
                record = read_json(path) or {}
            except StoreError:
                record = {}
            if float(record.get("deadline", 0)) < time.time():
                path.unlink(missing_ok=True)

    def forget(self, login_id: str) -> None:
        """Delete a login's file (its secrets with it)."""
        try:
            self._path(login_id).unlink()
        except FileNotFoundError:
            pass

    def _path(self, login_id: str) -> Path:
        if len(login_id) != _ID_LENGTH or not all(c in "0123456789abcdef" for c in login_id):
            raise StoreError("no such login")
        return self.directory / f"{login_id}.json"

    def _save(self, login_id: str, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json_atomic(self._path(login_id), record)

    def _load(self, login_id: str) -> dict[str, Any]:
        record = read_json(self._path(login_id))
        if record is None:
            raise StoreError("no such login (finished, expired or never started)")
        return record


def oidc_base(configured: str, region: str) -> str:
    """The OIDC endpoint for logins: KIRO_OIDC_URL without its /token, unless that is AWS's default and the
    login is for another region."""
    if configured == f"{base_url('us-east-1')}/token" and region != "us-east-1":
        return base_url(region)
    return configured[:-len("/token")] if configured.endswith("/token") else configured.rstrip("/")
