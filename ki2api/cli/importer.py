"""`python -m ki2api import [SOURCE]`: bring logins that exist already in as stored accounts.

SOURCE is the Kiro IDE's token file (default: KIRO_TOKEN_FILE, ~/.aws/sso/cache/kiro-auth-token.json), kiro-cli's
database (data.sqlite3), an account manager's JSON export, or `-` to read a Kiro API key (ksk_...) or JSON from
stdin (`--api-key-file` reads a key from a file). A login stored already (same refresh token, or same key) is
not copied again.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..accounts import importers
from ..accounts.files import StoreError
from . import common

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `import`."""
    parser = subparsers.add_parser("import", help="import an IDE token file, kiro-cli's database, an API key "
                                   "or an account manager's export", description=__doc__.split("\n\n")[1])
    parser.add_argument("source", nargs="?", help="a file, or - for stdin (default: the IDE's token file)")
    parser.add_argument("--api-key-file", metavar="FILE", help="a file holding a Kiro API key (ksk_...)")
    parser.add_argument("--name", help="the account's name (one login only; default: from the source)")


def run(args: argparse.Namespace) -> int:
    """Import every login the source holds; print one line per account (never a secret)."""
    config = common.settings()
    found = _read(args, config.token_file)
    if args.name and len(found) > 1:
        raise common.CommandError(f"the source holds {len(found)} logins: --name names one only")
    store = common.store(config)
    for item in found:
        stored, added = store.add(item.entry, item.via, name=args.name or _free(store, item.name))
        if added:
            log.info("account %s imported (%s)", stored.name, item.via)
            common.say(f"{stored.name}: imported ({item.via}), stored in {stored.path}")
            if item.entry.get("refreshToken"):
                common.warn(f"{stored.name}: this is a copy of the login; Kiro rotates refresh tokens, so stop "
                            "using it where it came from (or use that token file in place: KIRO_TOKEN_FILE)")
        else:
            common.say(f"{stored.name}: already stored (the same login); not copied again")
    return 0


def _read(args: argparse.Namespace, token_file: str) -> list[importers.Found]:
    if args.api_key_file:
        try:
            return [importers.api_key(Path(args.api_key_file).expanduser().read_text(encoding="utf-8"))]
        except OSError as exc:
            raise StoreError(f"cannot read {args.api_key_file}: {exc.strerror}") from None
    if args.source == "-":
        text = sys.stdin.read().strip()
        if text.startswith("ksk_"):
            return [importers.api_key(text)]
        try:
            return importers.export(json.loads(text), "stdin")
        except ValueError:
            raise StoreError("stdin holds neither a Kiro API key (ksk_...) nor JSON") from None
    if args.source and args.source.startswith("ksk_"):
        raise common.CommandError("give an API key through stdin (`import -`) or --api-key-file, not on the "
                                  "command line, where the shell history and `ps` would keep it")
    return importers.sniff(Path(args.source or token_file).expanduser())


def _free(store, name: str | None) -> str | None:
    return store.free_name(name) if name else None
