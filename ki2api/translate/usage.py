"""Token estimates for usage figures, since the upstream reports no token counts.

The estimate imitates a BPE tokenizer by character runs: a run of letters costs one token per
6 letters begun, digits one per 3, a run of ASCII punctuation 0.5 + 0.3 per character, line
breaks and extra spaces half a token, any other character (CJK, emoji, accents) 0.9. The weights
were fitted against Claude's published tokenizer on English, Python, Chinese and JSON text; the
README ("Usage figures") gives the measured error and the command that measures it
(`bench/usage_error.py`).
"""
from __future__ import annotations

import re

_RUNS = re.compile(r"([A-Za-z]+)|([0-9]+)|(\s+)|([!-/:-@\[-`{-~]+)|(.)", re.S)
LETTERS_PER_TOKEN, DIGITS_PER_TOKEN = 6, 3
PUNCT_BASE, PUNCT_EACH, SPACE, OTHER = 0.5, 0.3, 0.5, 0.9


def _cost(match: re.Match[str]) -> float:
    letters, digits, space, punct, _ = match.groups()
    if letters:
        return 1 + (len(letters) - 1) // LETTERS_PER_TOKEN
    if digits:
        return -(-len(digits) // DIGITS_PER_TOKEN)
    if space:
        return 0.0 if space == " " else SPACE
    if punct:
        return PUNCT_BASE + PUNCT_EACH * len(punct)
    return OTHER


class OutputCounter:
    """Running estimate over streamed pieces, the same as estimating the whole text at once.

    A run may continue in the next piece, so the last run of each piece is held and costed
    only when it is complete (or at the end, for `tokens`).
    """

    def __init__(self) -> None:
        self._done = 0.0
        self._tail = ""

    def add(self, text: str) -> None:
        """Count one more piece of output."""
        if not text:
            return
        buf = self._tail + text
        last = None
        for match in _RUNS.finditer(buf):
            if last is not None:
                self._done += _cost(last)
            last = match
        self._tail = last.group(0) if last is not None else ""

    @property
    def tokens(self) -> int:
        """The estimate for everything added so far (at least 1 once anything was added)."""
        total = self._done + sum(_cost(m) for m in _RUNS.finditer(self._tail))
        return max(1, round(total)) if total or self._tail else 0


def estimate_tokens(text: str) -> int:
    """Estimate the Claude tokens of `text` (0 for empty text)."""
    counter = OutputCounter()
    counter.add(text)
    return counter.tokens


def input_tokens_from_context(percentage: float | None, window: int, fallback: int) -> int:
    """Input tokens from the upstream's context-usage percentage, else the fallback estimate."""
    if percentage is None or percentage <= 0:
        return fallback
    return max(1, round(percentage * window / 100))
