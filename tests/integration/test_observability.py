"""Metrics and logs under gunicorn with several gevent workers: figures add up, live gauges, JSON lines."""
from __future__ import annotations

import glob
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from ki2api.observability.metrics import worker_files
from tests.helpers.credentials import ACCESS, KEY, REFRESH
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT_ROUTE = "/v1/chat/completions"
DEADLINE = 30.0


def chat(gw, i: int) -> int:
    """One non-streamed request on a new connection (so any worker may accept it)."""
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"q{i}"}]}
    headers = {**AUTH, "Connection": "close", "X-Request-Id": f"add-up-{i}"}
    return requests.post(f"{gw.url}{CHAT_ROUTE}", json=body, headers=headers, timeout=30).status_code


def scrape(gw) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def chat_total(samples) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "ki2api_requests_total" and dict(labels)["route"] == CHAT_ROUTE)


def metrics_dir(state: Path) -> Path:
    [path] = glob.glob(str(state / "prometheus-*"))
    return Path(path)


def per_worker(path: Path, kind: str, name: str, **labels: str) -> dict[int, float]:
    """{worker pid: value} of one sample, read from each worker's own file ({kind}_{pid}.db)."""
    values = {}
    for file in glob.glob(str(path / f"{kind}_*.db")):
        if file not in worker_files(str(path)):  # being created right now
            continue
        pid = int(Path(file).stem.rsplit("_", 1)[-1])
        for family in MultiProcessCollector.merge([file]):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    values[pid] = values.get(pid, 0) + sample.value
    return values


def test_counts_add_up_across_two_workers(start_gateway, fake_upstream, tmp_path):
    fake_upstream.set_default({"texts": ["ok"]})
    gw = start_gateway(workers=2)
    path = metrics_dir(tmp_path / "state")
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent < 200:  # until both workers have answered some (the kernel picks the accepting worker)
            assert list(pool.map(lambda i: chat(gw, i), range(sent, sent + 8))) == [200] * 8
            sent += 8
            # A request is counted when its response closes, just after the client has read it.
            served = wait_for(lambda: (lambda v: v if sum(v.values()) == sent else None)(
                per_worker(path, "counter", "ki2api_requests_total", route=CHAT_ROUTE)), f"{sent} counted")
            if len([v for v in served.values() if v > 0]) >= 2:
                break
    assert len([v for v in served.values() if v > 0]) == 2, served
    for _ in range(4):  # whichever worker answers the scrape reports the sum of both
        samples = scrape(gw)
        assert chat_total(samples) == sent
        for histogram in ("ki2api_request_ttfb_seconds_count", "ki2api_request_duration_seconds_count"):
            assert samples[(histogram, (("route", CHAT_ROUTE), ("stream", "false")))] == sent
    # The status page lists the latest API requests of both workers, whichever worker answers it.
    expected = {f"add-up-{i}" for i in range(sent)}
    for _ in range(4):
        listed = requests.get(f"{gw.url}/dashboard/data", headers={**AUTH, "Connection": "close"},
                              timeout=10).json()["recent_requests"]
        assert len(listed) == min(sent, 50) and {r["request_id"] for r in listed} <= expected
        if sent <= 50:
            assert {r["request_id"] for r in listed} == expected
        assert [r["t"] for r in listed] == sorted((r["t"] for r in listed), reverse=True)


def test_streams_in_flight_sum_over_workers_and_drop_when_a_worker_dies(start_gateway, fake_upstream, tmp_path):
    gw = start_gateway(workers=2)
    path = metrics_dir(tmp_path / "state")
    fake_upstream.script({"texts": [f"p{i} " for i in range(6)], "hold_after": 2, "repeat": 2})
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0, timeout=30)
    results: list[object] = []

    def consume():
        try:
            stream = client.chat.completions.create(model="claude-sonnet-4-5", stream=True,
                                                    messages=[{"role": "user", "content": "hi"}])
            results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except openai.APIError as exc:
            results.append(exc)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: fake_upstream.stats()["held_streams"] == 2, "two held streams")
    assert scrape(gw)[("ki2api_streams_in_flight", ())] == 2
    holders = {pid: v for pid, v in per_worker(path, "gauge_livesum", "ki2api_streams_in_flight").items() if v}
    victim = max(holders, key=lambda pid: holders[pid])
    os.kill(victim, signal.SIGKILL)
    # child_exit -> mark_process_dead removes the dead worker's live gauge; the master starts a new worker.
    wait_for(lambda: scrape(gw)[("ki2api_streams_in_flight", ())] == 2 - holders[victim], "the gauge to drop")
    fake_upstream.release()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert sum(1 for r in results if r == "p0 p1 p2 p3 p4 p5 ") == 2 - holders[victim]
    wait_for(lambda: scrape(gw)[("ki2api_streams_in_flight", ())] == 0, "the gauge to reach 0")
    # The master replaced the killed worker: its app is up once its gauge file exists.
    wait_for(lambda: len(per_worker(path, "gauge_livesum", "ki2api_streams_in_flight")) == 2, "the new worker")


def test_json_log_line_per_request_under_gunicorn(start_gateway, fake_upstream):
    fake_upstream.script({"texts": ["Hi"]}, {"texts": ["Hello", " there"]})
    gw = start_gateway(LOG_FORMAT="json")
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "LOGGED-PROMPT-MARKER"}]}
    streamed = requests.post(f"{gw.url}{CHAT_ROUTE}", headers={**AUTH, "X-Request-Id": "it-req-0001"}, timeout=30,
                             json={**body, "stream": True})
    whole = requests.post(f"{gw.url}{CHAT_ROUTE}", headers={**AUTH, "X-Request-Id": "it-req-0002"}, timeout=30,
                          json=body)
    assert streamed.status_code == whole.status_code == 200
    assert (streamed.headers["X-Request-Id"], whole.headers["X-Request-Id"]) == ("it-req-0001", "it-req-0002")
    [account] = requests.get(f"{gw.url}/dashboard/data", headers=AUTH, timeout=10).json()["accounts"]

    def line(request_id: str):
        for text in gw.log_text().splitlines():
            if text.startswith("{") and f'"{request_id}"' in text:
                return json.loads(text)
        return None

    for record, stream in ((wait_for(lambda: line("it-req-0001"), "the stream's line"), True),
                           (wait_for(lambda: line("it-req-0002"), "the completion's line"), False)):
        assert record["msg"] == "request" and record["logger"] == "ki2api.request" and record["level"] == "INFO"
        assert record["route"] == CHAT_ROUTE and record["status"] == 200 and record["stream"] is stream
        assert record["model"] == "claude-sonnet-4-5" and record["upstream_status"] == 200
        assert record["account"] == account["name"] and 0 < record["ttfb_ms"] <= record["duration_ms"]
    usage = whole.json()["usage"]
    assert (record["tokens_in"], record["tokens_out"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert line("it-req-0001")["outcome"] == "complete"
    ki2api_lines = [t for t in gw.log_text().splitlines() if '"logger":"ki2api' in t]
    assert all(json.loads(t) for t in ki2api_lines)
    for secret in ("LOGGED-PROMPT-MARKER", "Hello", KEY, ACCESS, REFRESH):  # prompt, answer, key, Kiro tokens
        assert secret not in gw.log_text()
