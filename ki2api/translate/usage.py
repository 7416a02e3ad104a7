"""Token estimates for usage figures, since the upstream reports no token counts.

The estimate imitates a BPE tokenizer by character runs: a run of letters costs one token per
6 letters begun, digits one per 3, a run of ASCII punctuation 0.5 + 0.3 per character, line
breaks and extra spaces half a token, any other character (CJK, emoji, accents) 0.9. The weights
were fitted against Claude's published tokenizer on English, Python, Chinese and JSON text; the
README ("Usage figures") gives the measured error and the command that measures it
(`bench/usage_error.py`).

The sum is kept in integer tenths of a token and counted without Python work per run: the text
becomes one class byte per character (bytes.translate), and runs are counted with bytes
split/replace/count (a regex only looks for Unicode spaces, in non-ASCII text). A streamed answer
is counted a batch at a time, not per frame (see OutputCounter).
"""
from __future__ import annotations

import re
import string

LETTERS_PER_TOKEN, DIGITS_PER_TOKEN = 6, 3
PUNCT_BASE, PUNCT_EACH, SPACE, OTHER = 0.5, 0.3, 0.5, 0.9
_TENTHS = (round(PUNCT_BASE * 10), round(PUNCT_EACH * 10), round(SPACE * 10), round(OTHER * 10))
_LETTERS, _DIGITS, _PUNCT = (frozenset(string.ascii_letters), frozenset(string.digits),
                             frozenset(string.punctuation))
_ASCII_SPACE = bytes(i for i in range(128) if chr(i).isspace())  # what `\s` matches, ASCII part
_UNICODE_SPACE = re.compile("[%s]" % "".join(chr(i) for i in range(128, 0x110000) if chr(i).isspace()))
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 continuation bytes: dropped, one class byte per character


def _table(classes: dict[bytes, bytes], default: bytes = b" ") -> bytes:
    """A bytes.translate table: each byte in a key becomes its value, any other byte `default`."""
    table = bytearray(default * 256)
    for members, code in classes.items():
        for byte in members:
            table[byte] = code[0]
    return bytes(table)


# Text -> one class byte per character: a letter, d digit, p punctuation, s one plain space, n other
# whitespace, o anything else (a UTF-8 lead byte stands for its character).
_CLASSES = _table({string.ascii_letters.encode(): b"a", string.digits.encode(): b"d",
                   string.punctuation.encode(): b"p", _ASCII_SPACE: b"n", b" ": b"s"}, b"o")
_ONLY_LETTERS, _ONLY_DIGITS = _table({b"a": b"a"}), _table({b"d": b"a"})
_ONLY_PUNCT, _ONLY_SPACE = _table({b"p": b"p"}), _table({b"s": b"s", b"n": b"n"})


def _groups(classes: bytes, only: bytes, size: int) -> int:
    """Sum over the runs of one class of ceil(run length / size): each run padded by size - 1, then the
    whole groups counted."""
    marked = (classes.translate(only) + b" ").replace(b"a ", b"a" * size + b" ")
    return marked.count(b"a" * size)


def _tenths(text: str) -> int:
    """The estimate of `text` in tenths of a token, summed over its character runs."""
    if not text.isascii() and _UNICODE_SPACE.search(text):
        text = _UNICODE_SPACE.sub("\n", text)  # the same run cost as any whitespace but one plain space
    classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES, _CONTINUATION)
    punct_base, punct_each, space, other = _TENTHS
    punct = classes.count(b"p")
    punct_runs = len(classes.translate(_ONLY_PUNCT).split()) if punct else 0
    space_runs = classes.translate(_ONLY_SPACE).split()
    return (10 * (_groups(classes, _ONLY_LETTERS, LETTERS_PER_TOKEN) + _groups(classes, _ONLY_DIGITS,
                                                                              DIGITS_PER_TOKEN))
            + space * (len(space_runs) - space_runs.count(b"s")) + punct_base * punct_runs + punct_each * punct
            + other * classes.count(b"o"))


def _kind(char: str) -> int:
    if char in _LETTERS:
        return 0
    if char in _DIGITS:
        return 1
    if char.isspace():  # what `\s` matches in a str pattern
        return 2
    return 3 if char in _PUNCT else 4


_RUN_CHARS = (string.ascii_letters, string.digits, None, string.punctuation)  # None: rstrip()'s whitespace


def _tokens(tenths: int) -> int:
    """Tenths to whole tokens, halves to even (as round() on the exact sum)."""
    whole, rest = divmod(tenths, 10)
    return whole + (rest > 5 or (rest == 5 and whole % 2 == 1))


class OutputCounter:
    """Running estimate over streamed pieces, the same as estimating the whole text at once.

    `add` only keeps the piece; pieces are counted a batch at a time (BATCH characters, or when
    `tokens` is read). A run may continue in the next piece, so the last run of a batch is held back,
    shortened to what its continuation needs (its cost grows by whole letter/digit groups, by 0.3 per
    punctuation character, not at all past two whitespace characters), so memory stays bounded.
    """

    BATCH = 2048

    def __init__(self) -> None:
        self._done = 0  # tenths of the text counted so far, except its last run
        self._tail = ""
        self._pending: list[str] = []
        self._pending_chars = 0
        self.characters = 0

    def add(self, text: str) -> None:
        """Count one more piece of output."""
        if text:
            self._pending.append(text)
            self._pending_chars += len(text)
            self.characters += len(text)
            if self._pending_chars >= self.BATCH:
                self._count()

    def _count(self) -> None:
        text = self._tail + "".join(self._pending)
        self._pending.clear()
        self._pending_chars = 0
        kind = _kind(text[-1])
        chars = _RUN_CHARS[kind] if kind < 4 else None
        cut = len(text) - 1 if kind == 4 else len(text.rstrip(chars))
        self._done += _tenths(text[:cut])
        tail = text[cut:]
        if kind < 2:  # whole groups of a letter/digit run are counted now; the rest starts the same run
            size = LETTERS_PER_TOKEN if kind == 0 else DIGITS_PER_TOKEN
            groups = (len(tail) - 1) // size
            self._done += 10 * groups
            tail = tail[groups * size:]
        elif kind == 2:
            tail = tail[:2]
        elif kind == 3:
            self._done += _TENTHS[1] * (len(tail) - 1)
            tail = tail[-1:]
        self._tail = tail

    @property
    def tokens(self) -> int:
        """The estimate for everything added so far (at least 1 once anything was added)."""
        if self._pending:
            self._count()
        if not self.characters:
            return 0
        return max(1, _tokens(self._done + _tenths(self._tail)))

    def at_least(self, limit: int) -> bool:
        """Whether the estimate has reached `limit`; counted only once there are that many characters
        (an estimate never exceeds the character count)."""
        return self.characters >= limit and self.tokens >= limit


def estimate_tokens(text: str) -> int:
    """Estimate the Claude tokens of `text` (0 for empty text)."""
    return max(1, _tokens(_tenths(text))) if text else 0


def input_tokens_from_context(percentage: float | None, window: int, fallback: int) -> int:
    """Input tokens from the upstream's context-usage percentage, else the fallback estimate."""
    if percentage is None or percentage <= 0:
        return fallback
    return max(1, round(percentage * window / 100))
