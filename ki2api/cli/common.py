"""What the commands share: the settings (as the server reads them), the account store, and a printer."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from ..accounts.pool import AccountPool
from ..accounts.store import AccountStore
from ..settings import ConfigError, Settings


class CommandError(Exception):
    """A command cannot do what was asked; the message is shown as is (never a secret) and the exit status is 1."""


def settings() -> Settings:
    """The settings the server would use: the environment, after `.env` (KI2API_DOTENV) like gunicorn's."""
    from dotenv import load_dotenv

    load_dotenv(os.environ.get("KI2API_DOTENV", ".env"))
    try:
        return Settings.from_env(os.environ)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def store(config: Settings) -> AccountStore:
    """The account store in the state directory the server uses (KI2API_STATE_DIR)."""
    return AccountStore(config.state_dir)


def pool(config: Settings) -> AccountPool:
    """Every account the server would serve from (configured and stored), with their shared state; no network.

    Built by the app factory, the one place that assembles the pool, exactly as a worker does.
    """
    from ..app import create_app

    logger = logging.getLogger("ki2api")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the start-up notes are for the server
    try:
        return create_app(config).extensions["ki2api"].pool
    finally:
        logger.setLevel(level)


def say(text: str = "", out: TextIO | None = None) -> None:
    """One line to stdout (or `out`)."""
    print(text, file=out or sys.stdout, flush=True)


def warn(text: str) -> None:
    """One line to stderr."""
    print(text, file=sys.stderr, flush=True)


def confirm(question: str) -> bool:
    """Ask on the terminal; False if stdin is not one or the answer is not yes."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Plain-text columns, left-aligned, a header line first."""
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return lines
