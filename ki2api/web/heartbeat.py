"""Keep-alives for streams: hand items on as they arrive, and say so when the source stays silent.

The source is iterated in a thread of its own; under gunicorn's gevent worker `threading` and
`queue` are patched, so that thread is a greenlet and waiting costs nothing. Each item is passed
on the moment the source yields it, so streaming stays real; only a silence longer than the
interval produces a `None` for the caller to turn into a ping.

Only the source's thread ever touches the source (an HTTP response cannot be closed by one
greenlet while another reads it). To stop early, `close()` flags the thread and calls the
`interrupt` it was given, which must make a blocked read return (shut the socket down); the
thread then closes the source itself.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Generic, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"
_QUEUE_SIZE = 256  # items the source may run ahead of a slow client
_PUT_POLL = 0.5  # seconds between checks that the reader is still there while the queue is full


class SourceVanished(RuntimeError):
    """The source's thread ended without a last item or an error (it was killed)."""


class Heartbeat(Generic[T]):
    """Iterate `items` in their own thread: yield each item as it comes, None after each silent `interval`.

    An exception from the source is raised to the reader. The thread starts at the first `next()`.
    """

    def __init__(self, items: Iterator[T], interval: float, interrupt: Callable[[], None]) -> None:
        self.items = items
        self.interval = interval
        self.interrupt = interrupt
        self._box: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=_QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False

    def __iter__(self) -> "Heartbeat[T]":
        return self

    def __next__(self) -> T | None:
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="stream-source", daemon=True)
            self._thread.start()
        try:
            kind, value = self._box.get(timeout=self.interval)
        except queue.Empty:
            if self._stop.is_set():  # closed while waiting: the reader has gone
                raise StopIteration from None
            if not self._thread.is_alive() and self._box.empty():
                self._done = True
                raise SourceVanished("the stream's source ended without finishing") from None
            return None
        if kind == _ITEM:
            return value  # type: ignore[return-value]
        self._done = True
        if kind == _ERROR:
            raise value  # type: ignore[misc]
        raise StopIteration

    @property
    def waiting(self) -> bool:
        """True if the next item (or the end) is already here: next() will not wait for the source."""
        return not self._box.empty()

    @property
    def closed(self) -> bool:
        """True once close() was called (the items that follow, if any, were never delivered)."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop early: flag the source's thread and interrupt it if it may still be reading.

        May be called from another greenlet than the reader's: a reader waiting in next() wakes up
        and ends the iteration.
        """
        self._stop.set()
        try:
            self._box.put_nowait((_END, None))
        except queue.Full:
            pass  # the reader has items to take first and will see the end after them
        if self._thread is not None and not self._done:
            self._done = True
            self.interrupt()

    def _put(self, entry: tuple[str, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._box.put(entry, timeout=_PUT_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            for item in self.items:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except Exception as exc:  # handed to the reader, which raises it in the request's context
            self._put((_ERROR, exc))
        finally:
            self._close_source()

    def _close_source(self) -> None:
        """Close the source here, in the thread that read it."""
        close = getattr(self.items, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            log.warning("closing a stream's source failed", exc_info=True)
