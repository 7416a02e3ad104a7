"""`python -m ki2api import`."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `import` command."""
    subparsers.add_parser("import", help="(being built)")


def run(args: argparse.Namespace) -> int:
    """Run the `import` command."""
    return 2
