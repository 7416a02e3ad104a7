"""`python -m ki2api doctor [--refresh] [--chat] [--json]`: every check, one line each, and what to do.

The exit status is 0 only if no check failed (skipped checks do not fail). The accounts, their token managers,
the shared state and the session are built as a worker builds them (create_app), from the same environment and
`.env`, so what doctor sees is what the server would see.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, TextIO

from dotenv import load_dotenv

from ..app import create_app
from ..diagnostics.check import Check, failed
from ..diagnostics.local import configuration
from ..diagnostics.runner import run_checks

MARKS = {"pass": "✓", "fail": "✗", "skip": "-"}
ASCII_MARKS = {"pass": "ok", "fail": "FAIL", "skip": "-"}


def add_parser(subparsers: Any) -> None:
    """Declare `doctor` and its options."""
    parser = subparsers.add_parser("doctor", help="check configuration, logins, network, clock, state and port",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--refresh", action="store_true",
                        help="refresh every login even if not due (spends a rotating refresh token once)")
    parser.add_argument("--chat", action="store_true", help="send a one-word test chat on every account")
    parser.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    parser.add_argument("--verbose", action="store_true", help="also print ki2api's log lines (stderr)")


def run(args: argparse.Namespace) -> int:
    """Run every check, print them; 0 if none failed, 1 otherwise."""
    load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))  # as wsgi.py does: the environment wins over .env
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # doctor's calls are not the server's requests to count
    checks = diagnose(dict(os.environ), args.refresh, args.chat)
    if args.json:
        json.dump([check.as_dict() for check in checks], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        write_text(checks, sys.stdout)
    return 1 if any(not check.ok for check in checks) else 0


def diagnose(environ: dict[str, str], force_refresh: bool = False, chat: bool = False) -> list[Check]:
    """The checks for this environment: the configuration first, the rest only if it parses."""
    first, settings = configuration(environ)
    if settings is None:
        return [first]
    try:
        services = create_app(settings).extensions["ki2api"]
    except Exception as exc:  # a bad accounts file or Redis URL: the configuration cannot be used
        return [failed("config", None, f"{type(exc).__name__}: {exc}", "correct the setting it names "
                       "(docs/configuration.md, docs/accounts.md)")]
    return [first] + run_checks(services, services.client.session, force_refresh, chat)


def write_text(checks: list[Check], out: TextIO) -> None:
    """One line per check (✓, ✗ or - for skipped), a failure's fix on its line after `what to do:`, a summary
    last."""
    marks = MARKS if _can_write(out, "".join(MARKS.values())) else ASCII_MARKS
    for check in checks:
        kind = "skip" if check.skipped else "pass" if check.ok else "fail"
        fix = f"; what to do: {check.fix}" if check.fix and not check.ok else ""
        out.write(f"{marks[kind]} {check.label}: {check.detail}{fix}\n")
    failures = sum(not c.ok for c in checks)
    skips = sum(c.skipped for c in checks)
    out.write(f"{len(checks)} checks: {len(checks) - failures - skips} passed, {failures} failed, {skips} skipped\n")


def _can_write(out: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(out, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
