"""Heartbeat: items as they come, None during silences, errors raised, early stops interrupt the source."""
import threading

import pytest

from ki2api.web.heartbeat import Heartbeat

WAIT = 10.0  # generous: these wait on events, never on elapsed time


def test_items_pass_through_in_order_and_then_it_ends():
    beat = Heartbeat(iter([1, 2, 3]), interval=WAIT, interrupt=lambda: None)
    assert list(beat) == [1, 2, 3]
    assert next(beat, "end") == "end"


def test_silence_gives_none_and_the_item_still_comes_when_ready():
    ready = threading.Event()

    def source():
        yield "first"
        ready.wait(WAIT)
        yield "late"

    beat = Heartbeat(source(), interval=0.01, interrupt=lambda: None)
    assert next(beat) == "first"
    assert next(beat) is None  # the source cannot yield until `ready` is set
    ready.set()
    rest = [item for item in beat]
    assert [item for item in rest if item is not None] == ["late"]


def test_a_source_error_is_raised_to_the_reader():
    def source():
        yield 1
        raise ValueError("upstream broke")

    beat = Heartbeat(source(), interval=WAIT, interrupt=lambda: None)
    assert next(beat) == 1
    with pytest.raises(ValueError, match="upstream broke"):
        next(beat)
    assert next(beat, "end") == "end"


def test_closing_early_interrupts_a_blocked_source_and_it_is_closed_in_its_own_thread():
    unblock, closed = threading.Event(), threading.Event()
    closed_in = []

    def source():
        try:
            yield "first"
            unblock.wait(WAIT)  # a read that only the interrupt ends
            yield "never delivered"
        finally:
            closed_in.append(threading.current_thread().name)
            closed.set()

    beat = Heartbeat(source(), interval=WAIT, interrupt=unblock.set)
    assert next(beat) == "first"
    beat.close()
    assert unblock.is_set()
    assert closed.wait(WAIT)
    assert closed_in == ["stream-source"]


def test_closing_after_the_end_does_not_interrupt():
    calls = []
    beat = Heartbeat(iter(["only"]), interval=WAIT, interrupt=lambda: calls.append("interrupt"))
    assert list(beat) == ["only"]
    beat.close()
    assert calls == []


def test_closing_from_elsewhere_wakes_a_waiting_reader():
    unblock = threading.Event()

    def source():
        yield "first"
        unblock.wait(WAIT)
        yield "never delivered"

    beat = Heartbeat(source(), interval=3600, interrupt=unblock.set)  # no ping would ever wake the reader
    assert next(beat) == "first"
    rest, finished = [], threading.Event()

    def reader():
        rest.extend(beat)
        finished.set()

    threading.Thread(target=reader, daemon=True).start()
    beat.close()
    assert finished.wait(WAIT)
    assert rest == [] and beat.closed


def test_waiting_says_whether_the_next_item_is_already_here():
    queued, release = threading.Event(), threading.Event()

    def source():
        yield "a"
        yield "b"
        queued.set()  # runs only once "b" is in the queue
        release.wait(WAIT)

    beat = Heartbeat(source(), interval=WAIT, interrupt=lambda: None)
    assert next(beat) == "a"
    assert queued.wait(WAIT)
    assert beat.waiting  # "b" came with "a": next() will not wait
    assert next(beat) == "b"
    assert not beat.waiting  # the source is blocked: nothing is here yet
    release.set()
    assert list(beat) == []
