"""RecentLog: the status page's latest requests, merged over every worker's file, newest first."""
from __future__ import annotations

import pytest

from ki2api.observability.recent import RecentLog


@pytest.fixture
def recent(tmp_path):
    """RecentLog(kind, limit, pid) in tmp_path; each is closed at the end."""
    made: list[RecentLog] = []

    def make(kind: str, limit: int, pid: int) -> RecentLog:
        made.append(RecentLog(kind, str(tmp_path), limit, pid=pid))
        return made[-1]

    yield make
    for log in made:
        log.close()


def entry(t: float, request_id: str) -> dict:
    return {"t": t, "request_id": request_id, "route": "/v1/chat/completions"}


def ids(entries: list[dict]) -> list[str]:
    return [e["request_id"] for e in entries]


def test_each_worker_sees_every_workers_latest_newest_first(recent):
    one, two = recent("requests", 4, 101), recent("requests", 4, 102)
    for t, (worker, name) in enumerate([(one, "a"), (two, "b"), (one, "c"), (two, "d"), (two, "e"), (one, "f")]):
        worker.add(entry(float(t), name))
    assert ids(one.latest()) == ids(two.latest()) == ["f", "e", "d", "c"]
    assert ids(one.items) == ["f", "c", "a"]  # its own, in memory


def test_a_file_is_cut_back_and_still_holds_the_newest(recent, tmp_path):
    log = recent("errors", 3, 7)
    for t in range(20):
        log.add(entry(float(t), f"r{t}"))
    lines = (tmp_path / "errors-7.jsonl").read_text().splitlines()
    assert 3 <= len(lines) <= 6
    assert ids(log.latest()) == ["r19", "r18", "r17"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_line_being_written_is_skipped(recent, tmp_path):
    log = recent("requests", 5, 1)
    log.add(entry(1.0, "whole"))
    (tmp_path / "requests-2.jsonl").write_text('{"t": 2.0, "request_id": "whole-2"}\n{"t": 3.0, "requ')
    assert ids(log.latest()) == ["whole-2", "whole"]


def test_without_a_directory_only_this_workers_memory():
    log = RecentLog("requests", None, 2)
    for t in range(3):
        log.add(entry(float(t), f"r{t}"))
    assert ids(log.latest()) == ["r2", "r1"]


def test_an_unwritable_directory_falls_back_to_memory(tmp_path, caplog):
    log = RecentLog("requests", str(tmp_path / "missing"), 2, pid=3)
    log.add(entry(1.0, "kept"))
    assert ids(log.latest()) == ["kept"]
    assert "showing this worker's requests only" in caplog.text
