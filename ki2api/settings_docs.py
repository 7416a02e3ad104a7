"""docs/configuration.md, rendered from the settings declaration (settings.py): one table per group.

Regenerate the page with `python -m ki2api.settings_docs > docs/configuration.md`; a test fails while it is
stale. Nothing in ki2api imports this module: it is the declaration's reader for the docs, as
`Settings.from_env` is its reader for the environment.
"""
from __future__ import annotations

import sys

from .settings import Setting, declared

COMMAND = "python -m ki2api.settings_docs > docs/configuration.md"


def markdown() -> str:
    """docs/configuration.md: one table per group of the declared variables."""
    lines = ["# Configuration", "",
             "Environment variables, or a `.env` file beside `wsgi.py` (copy `.env.example`). This page is "
             f"generated from `ki2api/settings.py`: `{COMMAND}`."]
    groups: dict[str, list[Setting]] = {}
    for spec in declared():
        groups.setdefault(spec.group, []).append(spec)
    for group, specs in groups.items():
        lines += ["", f"## {group}", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [f"| `{spec.env}` | {_shown(spec)} | {spec.doc}{_formerly(spec)} |" for spec in specs]
    return "\n".join(lines) + "\n"


def _shown(spec: Setting) -> str:
    if spec.shown is not None:
        return spec.shown
    value = spec.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(str(part) for part in value)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _formerly(spec: Setting) -> str:
    if not spec.deprecated:
        return ""
    names = ", ".join(f"`{name}`" for name in spec.deprecated)
    return f". Deprecated former name: {names}, still read while `{spec.env}` is unset"


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit(f"usage: {COMMAND}")
    sys.stdout.write(markdown())
