"""`python -m ki2api accounts`."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `accounts` command."""
    subparsers.add_parser("accounts", help="(being built)")


def run(args: argparse.Namespace) -> int:
    """Run the `accounts` command."""
    return 2
