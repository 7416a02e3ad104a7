"""The benchmark harness's own parts (no timing is asserted anywhere: speed is what bench/ reports, not tests).

The end-to-end smoke run (`python -m bench --quick`, about a minute, needs wrk) runs only when asked:
BENCH_SMOKE=1 .venv/bin/pytest tests/test_bench.py
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report, streamer, streams
from ki2api.upstream.events import TextDelta, iter_events

REPO = Path(__file__).resolve().parents[1]


def test_stamped_frames_are_valid_event_stream_frames_carrying_their_send_time():
    answer = streamer.INITIAL[streamer.INITIAL.index(b"\r\n") + 2:-2]
    frames = [streamer.stamped(200, "claude-sonnet-4.5") for _ in range(3)]
    events = list(iter_events([answer, *frames]))
    assert len(events) == 3 and all(isinstance(e, TextDelta) for e in events)
    stamps = [streams.STAMP.match(e.text.encode()) for e in events]
    assert all(stamps)
    times = [float(s.group(1)) for s in stamps]
    assert times == sorted(times)


def test_unstamped_frames_carry_plain_text():
    frame = streamer.text_frame(300, "claude-sonnet-4.5")
    (event,) = iter_events([frame])
    assert isinstance(event, TextDelta) and event.text.startswith("lorem ipsum")
    assert not streams.STAMP.search(event.text.encode())


def test_spec_comes_from_the_first_line_of_the_prompt():
    body = {"conversationState": {"currentMessage": {"userInputMessage": {
        "content": '{"n": 7, "pace": 0.5}\nrest of a long prompt', "modelId": "claude-haiku-4.5"}}}}
    spec, model = streamer.spec_of(json.dumps(body).encode())
    assert (spec["n"], spec["pace"], spec["b"], model) == (7, 0.5, streamer.DEFAULT["b"], "claude-haiku-4.5")


def test_dechunker_reassembles_a_body_split_anywhere():
    body = streamer.chunk(b"hello ") + streamer.chunk(b"world") + b"0\r\n\r\n"
    for cut in range(len(body) + 1):
        decoder = streams.Dechunker()
        data = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert data == b"hello world" and decoder.done


def test_table_judges_each_figure_against_its_target():
    run = {"request_fake_kiro": {"ki2api": {"c1": {"p50": 2.0, "p99": 3.0}, "c50": {"rps": 700}},
                                 "direct": {"c1": {"p50": 0.2, "p99": 1.0}, "c50": {"rps": 1000}}},
           "inproc": {"us_per_frame": 5.0}}
    text = report.table([run, run], "header")
    lines = {figure.name: next(line for line in text.splitlines() if line.startswith(figure.name))
             for figure in report.FIGURES}
    assert "MISSED" in lines["added latency p50, non-streamed, c=1 (fake Kiro)"]  # 1.8 ms > 1.5 ms
    assert "met" in lines["added latency p99, non-streamed, c=1 (fake Kiro)"]  # 2 ms <= 5 ms
    assert "met" in lines["  ratio to direct (fake Kiro)"]  # 0.7 >= 0.6
    assert "n/a" in lines["added per-frame delay p99 at N streams"]  # not measured in this run
    assert "full plan only" in report.table([run], "h", quick=True)


@pytest.mark.skipif(os.environ.get("BENCH_SMOKE") != "1", reason="about a minute; set BENCH_SMOKE=1 to run")
def test_quick_suite_runs_end_to_end_and_prints_the_table(tmp_path):
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "added latency p50" in proc.stdout
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["hold"]["ki2api"]["completed"] == run["hold"]["ki2api"]["streams"]
    assert run["flow"]["ki2api"]["failures"] == {}
