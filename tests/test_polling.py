"""Poller: the background loop the credit poller and the model lists share."""
from __future__ import annotations

import threading

from ki2api.accounts.polling import Poller


class Rounds(Poller):
    thread_name = "test-rounds"
    check_every = 0.01

    def __init__(self, interval: float, fail_first: bool = False) -> None:
        super().__init__(interval)
        self.rounds = 0
        self.done = threading.Event()
        self.fail_first = fail_first

    def poll_once(self) -> int:
        self.rounds += 1
        if self.fail_first and self.rounds == 1:
            raise RuntimeError("Kiro unreachable")
        return 1

    def round_done(self) -> None:
        if self.rounds >= 3:
            self.check_every = 3600.0  # then rest: the thread lives as long as the test session
            self.done.set()


def test_started_once_it_keeps_going_after_a_failed_round():
    rounds = Rounds(interval=0.01, fail_first=True)
    rounds.ensure_started()
    rounds.ensure_started()
    assert rounds.done.wait(5)
    assert rounds.started
    assert [t.name for t in threading.enumerate()].count("test-rounds") == 1


def test_an_interval_of_zero_never_starts():
    rounds = Rounds(interval=0)
    rounds.ensure_started()
    assert not rounds.started and rounds.rounds == 0
