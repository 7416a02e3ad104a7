"""The credits Kiro charged for an answer (its meteringEvent): onto the request's log line and, for a whole
answer, the `X-Kiro-Credits` response header.

The figure is Kiro's own, never estimated: where Kiro sent none (or ki2api stopped reading the answer before
it came, at a stop sequence or max_tokens) there is no field and no header.
"""
from __future__ import annotations

from flask import Response

from ..translate.answer import Usage
from .requestlog import note

HEADER = "X-Kiro-Credits"


def credits_text(value: float) -> str:
    """A credit figure as plain decimal text (no exponent), at most six decimals: 0.036, 1.5, 0."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def note_credits(usage: Usage) -> None:
    """Put the answer's credits on the request's log line (and so the recent requests and the metrics)."""
    if usage.credits is not None:
        note(credits=usage.credits)


def with_credits(response: Response, usage: Usage) -> Response:
    """A whole answer's response with its credits noted and in the X-Kiro-Credits header (if Kiro sent any)."""
    note_credits(usage)
    if usage.credits is not None:
        response.headers[HEADER] = credits_text(usage.credits)
    return response
