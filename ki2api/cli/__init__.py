"""`python -m ki2api <command>`: the command line, one module per command (`add_parser`, `run`)."""
from __future__ import annotations

import argparse
from typing import Sequence

from . import doctor

COMMANDS = {"doctor": doctor}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command, return its exit status."""
    parser = argparse.ArgumentParser(prog="python -m ki2api")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    args = parser.parse_args(argv)
    return COMMANDS[args.command].run(args)
