"""ki2api's command line: `python -m ki2api <command> ...`.

Adding a command: write `ki2api/cli/<name>.py` with two functions,
`add_parser(subparsers) -> None` (registers its argparse sub-parser; the sub-parser's `prog` and
help come from there) and `run(args: argparse.Namespace) -> int` (the exit status), then add one
line `"<name>": "ki2api.cli.<name>"` to COMMANDS below. Modules are imported only when their
command runs (or when `--help` lists them), so one command's imports never slow another down.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# subcommand -> module; each module has add_parser(subparsers) and run(args) -> int.
COMMANDS: dict[str, str] = {
    "login": "ki2api.cli.login",
    "import": "ki2api.cli.importer",
    "accounts": "ki2api.cli.accounts",
    "doctor": "ki2api.cli.doctor",
}


def _module(name: str) -> ModuleType:
    """The module implementing one subcommand."""
    return importlib.import_module(COMMANDS[name])


def parser() -> argparse.ArgumentParser:
    """The whole command line, every subcommand registered."""
    root = argparse.ArgumentParser(prog="python -m ki2api", description="ki2api: run the gateway, "
                                   "get Kiro accounts in and look after them.")
    subparsers = root.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _module(name).add_parser(subparsers)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]), run the chosen command, return its exit status."""
    args = parser().parse_args(argv)
    if not args.command:
        parser().print_help(sys.stderr)
        return 2
    from ..accounts.files import StoreError
    from .common import CommandError

    try:
        return int(_module(args.command).run(args) or 0)
    except (CommandError, StoreError) as exc:
        print(f"ki2api {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ki2api {args.command}: interrupted", file=sys.stderr)
        return 130
