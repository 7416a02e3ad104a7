"""`python -m ki2api login`: log a Kiro account in without the IDE, and store it.

Builder ID (the default) and IAM Identity Center (`--start-url`, `--region`) use AWS SSO OIDC's device flow:
open the address shown, on any device, and enter the code. `--social google|github` uses Kiro's own sign-in,
which needs a browser on this machine (its redirect comes back to 127.0.0.1 here).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import webbrowser
from datetime import datetime, timezone

import requests

from ..accounts import oidc, social
from ..accounts.credential import format_expiry
from ..accounts.oidc import LoginError
from . import common

log = logging.getLogger(__name__)
SOCIAL_WAIT = 300.0  # seconds a social login waits for the browser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `login`."""
    parser = subparsers.add_parser("login", help="log in to Kiro (Builder ID, IAM Identity Center, Google, "
                                   "GitHub) and store the account", description=__doc__.split("\n\n")[1])
    parser.add_argument("--start-url", default=oidc.BUILDER_ID_START_URL,
                        help="IAM Identity Center's start URL (default: Builder ID's)")
    parser.add_argument("--region", default=oidc.DEFAULT_REGION, help="the OIDC region (default us-east-1)")
    parser.add_argument("--social", choices=sorted(social.PROVIDERS), help="log in with Google or GitHub instead")
    parser.add_argument("--name", help="the new account's name (default: builder-id, idc, google, github)")
    parser.add_argument("--no-browser", action="store_true", help="do not try to open a browser")
    parser.add_argument("--qr", action="store_true",
                        help="also show the device login's address as a QR code, to open it on a phone")
    parser.add_argument("--oidc-url", help=argparse.SUPPRESS)  # tests: a fake OIDC service
    parser.add_argument("--auth-url", help=argparse.SUPPRESS)  # tests: a fake Kiro sign-in


def run(args: argparse.Namespace) -> int:
    """Run one login to the end; store it; 0 on success, 1 with a clear message otherwise."""
    config = common.settings()
    store = common.store(config)
    with requests.Session() as session:
        try:
            entry, via, client = _social(args, session) if args.social else _device(args, session)
        except LoginError as exc:
            raise common.CommandError(str(exc)) from None
    stored, added = store.add(entry, via, name=args.name, client=client)
    if not added:
        common.say(f"{stored.name}: this login is stored already")
        return 0
    log.info("account %s added by login (%s)", stored.name, via)
    common.say(f"Logged in: account {stored.name} stored in {stored.path}.")
    common.say("A running ki2api serves from it within a second; `python -m ki2api accounts list` shows it.")
    return 0


def _device(args: argparse.Namespace, session: requests.Session) -> tuple[dict, str, dict]:
    flow = oidc.DeviceFlow(session, args.region, args.start_url, url=args.oidc_url)
    kind = "builder-id" if args.start_url.rstrip("/") == oidc.BUILDER_ID_START_URL else "idc"
    client = flow.register()
    device = flow.start(client)
    common.say(f"Open {device.verification_uri} and enter the code {device.user_code}")
    common.say(f"or open {device.verification_uri_complete}")
    if args.qr:
        _print_qr(device.verification_uri_complete)
    common.say(f"(on any device; the code expires in {device.expires_in / 60:.0f} minutes). Waiting...")
    if not args.no_browser and _browser():
        webbrowser.open(device.verification_uri_complete)

    def waiting(reason: str, interval: float) -> None:
        if reason == "slow_down":
            common.warn(f"the service asked to poll more slowly: every {interval:.0f} s now")

    token = flow.poll(client, device, on_wait=waiting)
    expiry = format_expiry(datetime.fromtimestamp(client.expires_at, timezone.utc)) if client.expires_at else None
    return flow.entry(client, token), f"login:{kind}", {"secretExpiresAt": expiry}


def _print_qr(url: str) -> None:
    """`url` as a QR code drawn with block characters, for a phone's camera (segno: imported only here)."""
    import segno

    segno.make(url, error="m").terminal(out=sys.stdout, compact=True)
    sys.stdout.flush()


def _social(args: argparse.Namespace, session: requests.Session) -> tuple[dict, str, dict]:
    login = social.SocialLogin(session, args.social, url=args.auth_url or social.AUTH_URL)
    url = login.authorize_url()
    if args.no_browser or not _browser():
        port = login.redirect_uri.split(":")[2].split("/")[0]
        common.warn("No browser on this machine: Kiro's Google/GitHub sign-in returns to 127.0.0.1 here, so a "
                    "browser elsewhere cannot finish it, unless this port reaches it through an SSH tunnel "
                    f"(on your machine: ssh -L {port}:127.0.0.1:{port} <this server>). On a server, log in with "
                    "the device flow instead: `python -m ki2api login` (Builder ID) or `login --start-url ... "
                    "--region ...` (IAM Identity Center).")
        common.say(f"Through a tunnel, open: {url}")
    else:
        common.say(f"Opening your browser; if it does not open, go to: {url}")
        webbrowser.open(url)
    code = login.wait(SOCIAL_WAIT)
    return login.exchange(code), f"login:{args.social}", {}


def _browser() -> bool:
    """True if this session can open a browser (a graphical session or macOS/Windows, and a browser found)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True
