"""`python -m ki2api accounts list|show|disable|enable|remove|rename`: the accounts and their state.

`list` and `show` cover every account the server serves from (configured and stored), as /health shows them;
the changes apply to stored accounts (those `login` and `import` added): configured ones are changed where
they are configured (KIRO_ACCOUNTS_FILE, KIRO_TOKEN_DIR). A running server sees every change within a second.
"""
from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..accounts.credential import format_expiry
from ..accounts.entitlement import listed_ids
from ..accounts.status import account_rows
from ..accounts.token_store import TokenStore
from ..settings import Settings
from . import common

log = logging.getLogger(__name__)
_ACTIONS = ("list", "show", "disable", "enable", "remove", "rename")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `accounts` and its actions."""
    parser = subparsers.add_parser("accounts", help="list, show, disable, enable, remove or rename accounts",
                                   description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every account: state, expiry, last refresh, models, credits left")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    show = actions.add_parser("show", help="one account in full (never its secrets)")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print JSON for scripts")
    for action, text in (("disable", "take a stored account out of service"), ("enable", "put it back")):
        actions.add_parser(action, help=text).add_argument("name")
    remove = actions.add_parser("remove", help="delete a stored account and its secrets")
    remove.add_argument("name")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rename = actions.add_parser("rename", help="give a stored account another name")
    rename.add_argument("name")
    rename.add_argument("new_name")


def run(args: argparse.Namespace) -> int:
    """Run one `accounts` action."""
    config = common.settings()
    return {"list": _list, "show": _show, "disable": _disable, "enable": _enable, "remove": _remove,
            "rename": _rename}[args.action](args, config)


def summaries(config: Settings) -> list[dict[str, Any]]:
    """Every account as `list` shows it: /health's row plus where it comes from and its models; no secret."""
    stored = {s.name: s for s in common.store(config).accounts()}
    pool = common.pool(config)
    states = pool.states(fresh=True)
    result = []
    for row in account_rows(pool):
        item = stored.get(row["name"])
        credential = row["credential"]
        usage = row.get("usage") or {}
        result.append({
            "name": row["name"], "state": row["state"],
            "origin": f"stored ({item.via})" if item else "configured",
            "kind": credential.get("auth_method") if not (item and item.via == "import:api-key") else "api_key",
            "expires_at": row["expires_at"], "expires_in_seconds": row["expires_in_seconds"],
            "last_refresh": credential.get("last_refresh"), "needs_login": credential.get("needs_login"),
            "models": listed_ids(states.get(row["name"], {})),
            "credits_left": usage.get("remaining"), "usage": row.get("usage"),
            "requests": row["requests"], "errors": row["errors"], "last_error": row["last_error"],
            "added_at": item.added_at if item else None, "file": str(item.path) if item else credential.get("path"),
        })
    return result


def _list(args: argparse.Namespace, config: Settings) -> int:
    rows = summaries(config)
    if args.json:
        common.say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        common.say("no accounts: add one with `python -m ki2api login` or `python -m ki2api import`")
        return 0
    shown = [{**r, "expires": _expiry(r), "last refresh": _refresh(r.get("last_refresh")),
              "models": "(not fetched)" if r["models"] is None else len(r["models"]),
              "credits left": "?" if r["credits_left"] is None else r["credits_left"]} for r in rows]
    for line in common.table(shown, ["name", "state", "kind", "origin", "expires", "last refresh", "models",
                                     "credits left"]):
        common.say(line)
    return 0


def _show(args: argparse.Namespace, config: Settings) -> int:
    row = next((r for r in summaries(config) if r["name"] == args.name), None)
    if row is None:
        raise common.CommandError(f"no account named {args.name!r} (see `accounts list`)")
    if args.json:
        common.say(json.dumps(row, indent=2))
        return 0
    for key, value in row.items():
        common.say(f"{key + ':':20} {value if not isinstance(value, (dict, list)) else json.dumps(value)}")
    return 0


def _disable(args: argparse.Namespace, config: Settings) -> int:
    common.store(config).set_enabled(args.name, False)
    log.info("account %s disabled from the command line", args.name)
    common.say(f"{args.name}: disabled (a running ki2api stops using it within a second)")
    return 0


def _enable(args: argparse.Namespace, config: Settings) -> int:
    common.store(config).set_enabled(args.name, True)
    common.say(f"{args.name}: enabled")
    return 0


def _remove(args: argparse.Namespace, config: Settings) -> int:
    store = common.store(config)
    stored = store.get(args.name)
    if not args.yes and not common.confirm(f"Delete account {stored.name} and its tokens ({stored.path})?"):
        common.warn("not removed (answer y, or pass --yes)")
        return 1
    store.remove(stored.name)
    common.say(f"{stored.name}: removed ({stored.path} deleted)")
    return 0


def _rename(args: argparse.Namespace, config: Settings) -> int:
    store = common.store(config)
    stored = store.get(args.name)
    # The freshest tokens may be in the shared state under the old name: write them into the renamed file.
    tokens = TokenStore("", config.state_dir, None, None, share=common.pool(config).shared, name=stored.name,
                        accounts_file=str(stored.path)).load().credential
    entry = dict(stored.entry)
    if tokens.refresh_token:
        entry.update(accessToken=tokens.access_token, refreshToken=tokens.refresh_token)
        if tokens.expires_at:
            entry["expiresAt"] = format_expiry(tokens.expires_at)
    store.replace(stored.name, args.new_name, entry)
    common.say(f"{stored.name}: renamed to {args.new_name}")
    return 0


def _expiry(row: dict[str, Any]) -> str:
    seconds = row.get("expires_in_seconds")
    if seconds is None:
        return "never" if row.get("kind") == "api_key" else "?"
    return "expired" if seconds <= 0 else f"in {seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _refresh(outcome: dict[str, Any] | None) -> str:
    if not outcome:
        return "-"
    return f"{outcome.get('at', '?')} {'ok' if outcome.get('ok') else 'failed'}"
