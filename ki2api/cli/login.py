"""`python -m ki2api login`."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `login` command."""
    subparsers.add_parser("login", help="(being built)")


def run(args: argparse.Namespace) -> int:
    """Run the `login` command."""
    return 2
