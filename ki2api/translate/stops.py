"""Cutting streamed text at the first stop sequence, holding back only what could start one."""
from __future__ import annotations


class StopScanner:
    """Feed text pieces; get back what is safe to emit and whether a stop sequence was hit."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """Return the text that can be emitted now; after a stop, return only what precedes it."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buf = self._pending + text
        cut = -1
        for stop in self.stops:
            at = buf.find(stop)
            if at != -1 and (cut == -1 or at < cut):
                cut, self.matched = at, stop
        if cut != -1:
            self.stopped = True
            self._pending = ""
            return buf[:cut]
        keep = min(self._hold, len(buf))
        self._pending = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """Return the held-back tail at the end of the answer."""
        tail, self._pending = ("" if self.stopped else self._pending), ""
        return tail
