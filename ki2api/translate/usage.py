"""Token estimates for usage figures, since the upstream reports no token counts."""
from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """Estimate Claude tokens: about 4 ASCII characters per token, one token per other character."""
    if not text:
        return 0
    ascii_chars = sum(1 for ch in text if ord(ch) < 128) if not text.isascii() else len(text)
    other = len(text) - ascii_chars
    return max(1, (ascii_chars + 3) // 4 + other)


def input_tokens_from_context(percentage: float | None, window: int, fallback: int) -> int:
    """Input tokens from the upstream's context-usage percentage, else the fallback estimate."""
    if percentage is None or percentage <= 0:
        return fallback
    return max(1, round(percentage * window / 100))
