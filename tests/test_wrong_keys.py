"""WrongKeyLog: refused requests summed up per period, first one per address told apart, bounded in addresses."""
from __future__ import annotations

import logging

from ki2api.observability import wrong_keys
from ki2api.observability.wrong_keys import WrongKeyLog


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_the_first_per_address_and_period_is_told_apart_the_rest_summed_up(caplog):
    caplog.set_level(logging.WARNING, logger="ki2api.auth")
    clock = Clock()
    book = WrongKeyLog(period=60, clock=clock)
    assert [book.note("10.0.0.1"), book.note("10.0.0.1"), book.note("10.0.0.2")] == [True, False, True]
    for _ in range(7):
        book.note("10.0.0.1")
    assert caplog.records == []
    clock.now += 60
    assert book.note("10.0.0.1") is True  # a new period
    [summary] = [r.getMessage() for r in caplog.records]
    assert summary == ("refused 8 more requests with a wrong or missing API key in the last 60 s from 1 "
                       "address(es): 10.0.0.1 x8")


def test_a_spread_out_guesser_is_counted_without_growing_the_table(monkeypatch):
    monkeypatch.setattr(wrong_keys, "MAX_ADDRESSES", 3)
    book = WrongKeyLog(clock=Clock())
    firsts = [book.note(f"10.0.0.{i}") for i in range(10)]
    assert firsts == [True] * 3 + [False] * 7
    assert len(book._seen) == 4 and book._seen[wrong_keys.OTHERS] == 7
