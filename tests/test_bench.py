"""The benchmark harness's own parts (no timing is asserted anywhere: speed is what bench/ reports, not tests).

The last test runs the whole harness end to end at its smallest sizes (`python -m bench --smoke`, about
30-40 s, needs Debian's wrk: a missing wrk skips the test, or fails it under CI).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import markdown, report, streamer, streams, suite
from ki2api.upstream.events import TextDelta, iter_events
from tests.helpers.ci import missing

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


@pytest.mark.integration
def test_the_harness_produces_every_figure(tmp_path):
    """`python -m bench --smoke`: every scenario against gunicorn, the fake Kiro and the bench streamer, at sizes
    too small to mean anything about speed; what is checked is that each figure of the table comes out."""
    if shutil.which("wrk") is None:
        missing("wrk is not installed (apt-get install wrk; scripts/system-deps.sh installs it)")
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["plan_name"] == "smoke" and result["machine"]["cores"] >= 1
    (run,) = result["runs"]
    assert set(bench_main.SCENARIOS) <= set(run)
    for figure in report.FIGURES:  # each figure of the table was measured: a number, none missing
        value = report._safe(figure.read, run)
        assert math.isfinite(value), figure.name
        assert figure.name in proc.stdout
    floors = ("passthrough", "flask_only", "socket", "geventhttpclient")
    for section, forwards in (("request_fake_kiro", ("ki2api", "direct") + floors),
                              ("request_streamer", ("ki2api", "direct"))):
        assert set(run[section]) == set(forwards)
        for who in forwards:
            for load in ("c1", "c50"):
                measured = run[section][who][load]
                assert measured["requests"] > 0 and measured["failed"] == 0, (section, who, load)
    assert set(run["request_waiting"]) == {str(wait) for wait in suite.WAITS}
    assert all(measured[who]["requests"] > 0 and measured[who]["failed"] == 0
               for measured in run["request_waiting"].values() for who in ("ki2api", "direct"))
    for who in ("ki2api", "direct"):
        assert run["hold"][who]["failures"] == {} and run["hold"][who]["completed"] == run["hold"][who]["streams"]
        assert run["flow"][who]["failures"] == {} and run["flow"][who]["delay_ms"]["count"] > 0
    assert all(run["cpu"][kind][count] == suite.SMOKE.cpu_streams for kind in ("paced", "burst")
               for count in ("completed", "anthropic_completed", "relay_completed", "passthrough_completed"))
    assert set(run["scaling"]) == {str(w) for w in suite.SMOKE.scaling}
    assert set(run["growth"]["answers"]) == {str(n) for n in suite.SMOKE.answer_sizes}
    assert set(run["growth"]["prompts"]) == {str(n) for n in suite.SMOKE.prompt_sizes}
    text = markdown.render(result)  # the performance page's tables come out of the same file
    assert all(figure.name.strip() in text for figure in report.FIGURES)
