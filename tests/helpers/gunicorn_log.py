"""A stand-in for gunicorn's logger (a server's or a worker's `log`) that keeps each line it is given."""
from __future__ import annotations


class Log:
    """Keeps (level, message) pairs, the message formatted as gunicorn's logger would."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(("info", message % args))

    def warning(self, message: str, *args: object) -> None:
        self.lines.append(("warning", message % args))
