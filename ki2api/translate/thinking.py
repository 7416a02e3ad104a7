"""Legacy thinking mode: the system-prompt prefix that asks for it, and splitting the answer it causes.

With the prefix, Claude writes its reasoning as `<thinking>...</thinking>` at the start of
the answer text. `ThinkingSplitter` separates that block from the answer as the text
streams in. Only a tag at the very start opens a block, and only a closing tag that is
not quoted and is followed by a blank line (or the end) closes it, so an answer that
talks about the tags is left alone.
"""
from __future__ import annotations

from typing import Literal

MIN_BUDGET, MAX_BUDGET = 1024, 24576
OPEN, CLOSE, CLOSE_AFTER = "<thinking>", "</thinking>", "\n\n"
_QUOTES = "`\"'"

Kind = Literal["reasoning", "text"]
Piece = tuple[Kind, str]


def thinking_prefix(budget_tokens: int) -> str:
    """The text to put before the system prompt to turn thinking on, budget clamped to 1024-24576."""
    budget = min(MAX_BUDGET, max(MIN_BUDGET, int(budget_tokens)))
    return f"<thinking_mode>enabled</thinking_mode><max_thinking_length>{budget}</max_thinking_length>"


def with_thinking(system: str, budget_tokens: int) -> str:
    """`system` with the thinking prefix before it."""
    prefix = thinking_prefix(budget_tokens)
    return f"{prefix}\n{system}" if system else prefix


def reserialise(reasoning: str, text: str) -> str:
    """Past reasoning and answer text as one history message, the way the model wrote them."""
    return f"{OPEN}{reasoning}{CLOSE}{CLOSE_AFTER}{text}" if reasoning else text


def _held_suffix(buf: str, pattern: str) -> int:
    """Length of the longest end of `buf` that is a proper beginning of `pattern`."""
    for size in range(min(len(buf), len(pattern) - 1), 0, -1):
        if pattern.startswith(buf[-size:]):
            return size
    return 0


class ThinkingSplitter:
    """Feed answer text as it streams; get back (kind, text) pieces, holding back only a possible tag."""

    def __init__(self) -> None:
        self._state = "start"  # start -> reasoning -> text, or start -> text
        self._buf = ""
        self._before = ""  # the last reasoning character emitted, to spot a quoted closing tag
        self._drop_newline = False

    def feed(self, text: str) -> list[Piece]:
        """Pieces that are certain now, in order."""
        self._buf += text
        out: list[Piece] = []
        if self._state == "start":
            self._start()
        if self._state == "reasoning":
            out += self._reasoning(final=False)
        if self._state == "text" and self._buf:
            out.append(("text", self._buf))
            self._buf = ""
        return out

    def flush(self) -> list[Piece]:
        """At the end of the text (stream end or a tool call): release what was held, end any block."""
        out: list[Piece] = []
        if self._state == "reasoning":
            out += self._reasoning(final=True)
        if self._buf:
            out.append(("reasoning" if self._state == "reasoning" else "text", self._buf))
        self._buf, self._state = "", "text"
        return out

    def _start(self) -> None:
        stripped = self._buf.lstrip()
        if stripped.startswith(OPEN):
            self._buf = stripped[len(OPEN):]
            self._state, self._drop_newline = "reasoning", True
        elif not OPEN.startswith(stripped):
            self._state = "text"

    def _reasoning(self, final: bool) -> list[Piece]:
        out: list[Piece] = []
        if self._drop_newline and self._buf:
            self._buf = self._buf[1:] if self._buf.startswith("\n") else self._buf
            self._drop_newline = False
        search = 0
        while True:
            at = self._buf.find(CLOSE, search)
            if at == -1:
                break
            after = self._buf[at + len(CLOSE):]
            before = self._buf[at - 1] if at else self._before
            if before and before in _QUOTES:
                search = at + 1
                continue
            if after.startswith(CLOSE_AFTER) or (final and not after.strip()):
                self._emit(out, self._buf[:at])
                self._buf = after[len(CLOSE_AFTER):] if after.startswith(CLOSE_AFTER) else ""
                self._state = "text"
                return out
            if not final and CLOSE_AFTER.startswith(after):
                self._emit(out, self._buf[:at])  # wait for what follows the tag
                self._buf = self._buf[at:]
                return out
            search = at + 1
        if final:
            return out
        keep = _held_suffix(self._buf, CLOSE)
        self._emit(out, self._buf[: len(self._buf) - keep])
        self._buf = self._buf[len(self._buf) - keep:]
        return out

    def _emit(self, out: list[Piece], text: str) -> None:
        if text:
            out.append(("reasoning", text))
            self._before = text[-1]
