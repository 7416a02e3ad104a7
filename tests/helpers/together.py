"""Running one call from many threads, or many worker processes, released at the same instant (a barrier),
as concurrent requests would."""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

import requests

T = TypeVar("T")
PROCESS_TIMEOUT = 60.0


def all_at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """`call(i)` for i in range(count), each in its own thread, all started together; results in order."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def _current_token(index: int, settings: Any, barrier: Any, results: Any) -> None:
    """One worker process: build a TokenManager, wait for the others, then ask for the credential."""
    from ki2api.accounts.token_manager import TokenManager

    try:
        manager = TokenManager(settings, requests.Session())
        barrier.wait(timeout=30)
        results.put((index, manager.current().access_token))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((index, f"error: {exc!r}"))


def tokens_in_processes(settings: Sequence[Any]) -> list[str]:
    """The access token `TokenManager(s).current()` gives in one fresh process per settings, all asking at once."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(settings)), context.Queue()
    workers = [context.Process(target=_current_token, args=(i, s, barrier, results)) for i, s in enumerate(settings)]
    for worker in workers:
        worker.start()
    answers = dict(results.get(timeout=PROCESS_TIMEOUT) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0] * len(workers)
    return [answers[i] for i in range(len(workers))]


def _status(settings: Any, results: Any) -> None:
    from ki2api.accounts.token_manager import TokenManager

    try:
        results.put(TokenManager(settings, requests.Session()).status())
    except Exception as exc:  # reported to the parent, which fails the test
        results.put({"error": f"error: {exc!r}"})


def status_in_process(settings: Any) -> dict[str, Any]:
    """`TokenManager(settings).status()` as a fresh worker process (with nothing in memory) reports it."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_status, args=(settings, results))
    worker.start()
    status = results.get(timeout=PROCESS_TIMEOUT)
    worker.join(timeout=30)
    assert worker.exitcode == 0, status
    return status
