"""One check's result: which check, about what, passed or not, what was seen and what to do."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """A result: `ok` false is a failure; `skipped` checks were not run (why in `detail`) and do not fail."""

    check: str  # config | token | clock | network | refresh | models | credits | chat | shared_state | port
    subject: str | None  # the account or endpoint it is about, if any
    ok: bool
    detail: str
    fix: str | None = None  # what to do about a failure, in plain words
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (`doctor --json`)."""
        return asdict(self)

    @property
    def label(self) -> str:
        """`check` or `check subject`, as the text output names it."""
        return f"{self.check} {self.subject}" if self.subject else self.check


def passed(check: str, subject: str | None, detail: str) -> Check:
    """A check that passed."""
    return Check(check, subject, True, detail)


def failed(check: str, subject: str | None, detail: str, fix: str) -> Check:
    """A check that failed, with what to do."""
    return Check(check, subject, False, detail, fix)


def skipped(check: str, subject: str | None, why: str) -> Check:
    """A check that was not run, and why."""
    return Check(check, subject, True, why, skipped=True)
