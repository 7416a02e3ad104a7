"""Load with faults: 200 concurrent clients for 60 s while 5% of upstream calls fail in random ways.

A third of the clients speak Anthropic's /v1/messages, the others OpenAI's /v1/chat/completions, each
alternating whole and streamed answers. Every request must end with its answer or one proper error in its
API's own format (none hangs), the worker's memory must come back to where it was after a warm-up of the
same shape, and /metrics must count exactly what the clients saw, per route.
Marked `slow` (about 90 s); CI runs it.
"""
from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter

import pytest
import requests

from tests.helpers.credentials import KEY
from tests.helpers.faults import ANTHROPIC_BODY, OPENAI_BODY, parse_sse
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIENTS = 200
DURATION = 60.0
FAULT_RATE = 0.05
SEED = 20261125
TEXTS = [f"t{i} " for i in range(20)]
ANSWER = "".join(TEXTS)
NORMAL = {"texts": TEXTS, "pace": 0.1}  # about 2 s per answer: ~100 requests/s at 200 clients
FAULTS = [
    {"status": 500, "json": {"message": "Internal failure"}},
    {"status": 503, "json": {"message": "Service unavailable"}},
    {"status": 400, "json": {"message": "Improperly formed request.", "reason": "REQUEST_BODY_INVALID"}},
    # Kiro throttling: the account rests for the Retry-After it sends, kept to a millisecond so that the
    # throttle is this request's error only (a longer rest turns away everyone's requests meanwhile).
    {"status": 429, "json": {"message": "Too many requests", "__type": "ThrottlingException"},
     "headers": {"Retry-After": "0.001"}},
    {"fault": "reset_before"},
    {"fault": "non_eventstream"},
    {**NORMAL, "fault": "reset_after", "fault_after": 5},
    {**NORMAL, "fault": "truncate", "fault_after": 5},
    {**NORMAL, "fault": "bad_crc", "fault_after": 5},
    {**NORMAL, "fault": "stall", "fault_after": 5},
    {"events": [{"event": "assistantResponseEvent", "payload": {"content": "cut "}},
                {"exception": "InternalServerException", "message": "boom"}]},
]
REQUEST_TIMEOUT = 30.0
AUTH = {"Authorization": f"Bearer {KEY}"}
ROUTES = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
ERROR_STATUSES = (400, 429, 502, 503, 504)
RESTING = "The Kiro account is resting"  # a request turned away while the throttled account rests (no Kiro call)


def fault_plan(count: int, rng: random.Random) -> tuple[list[dict], list[bool]]:
    """The fake's script for `count` calls (normal runs compressed with `repeat`) and which calls fail."""
    failing = [rng.random() < FAULT_RATE for _ in range(count)]
    specs: list[dict] = []
    for fails in failing:
        if fails:
            specs.append(rng.choice(FAULTS))
        elif specs and specs[-1].get("repeat") and specs[-1] is not NORMAL:
            specs[-1]["repeat"] += 1
        else:
            specs.append({**NORMAL, "repeat": 1})
    return specs, failing


def error_outcome(api: str, status: int, body: dict) -> str:
    """error (one proper error in the API's envelope), rested (turned away, no Kiro call) or wrong:<why>."""
    error = body.get("error") if isinstance(body, dict) else None
    if api == "anthropic" and body.get("type") != "error":
        return f"wrong:{status} not an Anthropic error {body}"
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not error.get("type") \
            or status not in ERROR_STATUSES:
        return f"wrong:{status} {body}"
    return "rested" if error["message"].startswith(RESTING) else "error"


def stream_outcome(api: str, events: list) -> str:
    """answer, error (one in-band error, then a clean end) or wrong:<why>, for a whole SSE stream."""
    if api == "openai":
        datas = [d for _, d in events]
        if not datas or datas[-1] != "[DONE]":
            return "wrong:no [DONE]"
        errors = [d for d in datas if isinstance(d, dict) and "error" in d]
        text = "".join(d["choices"][0]["delta"].get("content") or "" for d in datas if isinstance(d, dict)
                       and d.get("choices"))
    else:
        if not events or events[-1][0] != "message_stop" or [n for n, _ in events].count("message_delta") != 1:
            return "wrong:no single message_delta, message_stop at the end"
        errors = [d for n, d in events if n == "error"]
        text = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    if errors:
        return "error" if len(errors) == 1 else "wrong:several errors"
    return "answer" if text == ANSWER else f"wrong:stream text {text!r}"


def one_request(session: requests.Session, url: str, api: str, stream: bool) -> tuple[str, int, bool, str]:
    """(api, status, stream flag, outcome) where outcome is answer, error, rested or wrong:<why>."""
    body = {**(OPENAI_BODY if api == "openai" else ANTHROPIC_BODY), "stream": stream}
    with session.post(f"{url}{ROUTES[api]}", json=body, headers=AUTH, stream=True, timeout=REQUEST_TIMEOUT) as r:
        if r.status_code != 200:
            return api, r.status_code, stream, error_outcome(api, r.status_code, r.json())
        if not stream:
            answer = r.json()
            text = answer["choices"][0]["message"]["content"] if api == "openai" else \
                "".join(block.get("text", "") for block in answer["content"])
            return api, 200, stream, "answer" if text == ANSWER else f"wrong:text {text!r}"
        events = parse_sse(list(r.iter_lines(decode_unicode=True)))
    return api, 200, stream, stream_outcome(api, events)


def run_clients(url: str, clients: int, duration: float) -> list[tuple[str, int, bool, str]]:
    """`clients` threads asking back to back until `duration` is over: every third one on Anthropic's API,
    the others on OpenAI's, each alternating whole and streamed answers."""
    deadline = time.monotonic() + duration
    results: list[tuple[str, int, bool, str]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        api = "anthropic" if index % 3 == 0 else "openai"
        stream = bool(index % 2)
        while time.monotonic() < deadline:
            try:
                outcome = one_request(session, url, api, stream)
            except requests.RequestException as exc:
                outcome = (api, 0, stream, f"wrong:{type(exc).__name__}")
            with lock:
                results.append(outcome)
            stream = not stream
        session.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + REQUEST_TIMEOUT + 30)
    assert not any(t.is_alive() for t in threads), "a client never got its answer (hung)"
    return results


def rss_kb(pid: int) -> int:
    """Resident memory of a process, in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>[0-9.e+-]+)$')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of one metric from Prometheus text: (labels, value)."""
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            out.append((labels, float(match["value"])))
    return out


def api_counts(gw) -> Counter:
    """/metrics' request counts of both APIs by (api, status, streamed)."""
    text = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=30).text
    apis = {path: api for api, path in ROUTES.items()}
    counts: Counter = Counter()
    for labels, value in metric_samples(text, "ki2api_requests_total"):
        if labels.get("route") in apis:
            counts[(apis[labels["route"]], int(labels["status"]), labels["stream"] == "true")] += int(value)
    return counts


def upstream_error_total(gw) -> int:
    """/metrics' count of failed upstream calls, all kinds."""
    text = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=30).text
    return int(sum(value for _, value in metric_samples(text, "ki2api_upstream_errors_total")))


def streams_in_flight(gw) -> float:
    """/metrics' count of streamed responses still open."""
    text = requests.get(f"{gw.url}/metrics", headers=AUTH, timeout=30).text
    return sum(value for _, value in metric_samples(text, "ki2api_streams_in_flight"))


def settled(gw, expected: int, what: str) -> None:
    """Wait until /metrics has counted `expected` API requests in all and no stream is still open.

    Waits for "at least" and then checks "exactly", so a count that overshoots fails with its figures at once.
    """
    wait_for(lambda: sum(api_counts(gw).values()) >= expected and streams_in_flight(gw) == 0, timeout=60,
             interval=0.2, what=f"/metrics to count every request of {what}")
    assert sum(api_counts(gw).values()) == expected, (api_counts(gw), expected)


def test_200_clients_for_60_s_with_5_percent_upstream_faults(start_gateway, fake_upstream, record_property):
    # A stall is 5 s of upstream silence: far beyond the 0.1 s pace even when a loaded machine delays a frame.
    gw = start_gateway(UPSTREAM_READ_TIMEOUT="5")
    pid = int(re.findall(r"Booting worker with pid: (\d+)", gw.log_text())[-1])

    # Warm-up of the same shape (200 at once, no faults), so the baseline has its pools and arenas grown.
    fake_upstream.set_default(NORMAL)
    warm = run_clients(gw.url, CLIENTS, 5.0)
    assert {outcome for *_, outcome in warm} == {"answer"}
    assert {api for api, *_ in warm} == set(ROUTES)
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="the warm-up to finish")
    # A request is counted when its response closes, just after its client read the last byte: wait until the
    # warm-up's last ones are in, or they would show up in the load's figures below.
    settled(gw, len(warm), "the warm-up")
    baseline_rss = rss_kb(pid)
    before = api_counts(gw)
    errors_before = upstream_error_total(gw)
    calls_before = fake_upstream.stats()["chat_requests"]

    rng = random.Random(SEED)
    specs, failing = fault_plan(40_000, rng)
    fake_upstream.script(*specs)
    results = run_clients(gw.url, CLIENTS, DURATION)
    calls = fake_upstream.stats()["chat_requests"] - calls_before

    wrong = Counter(outcome for *_, outcome in results if outcome.startswith("wrong"))
    assert not wrong, wrong
    outcomes = Counter(outcome for *_, outcome in results)
    # One upstream call per request (nothing lost, nothing retried behind our back), except for the requests
    # turned away without one in the millisecond a throttled account rests.
    assert calls == len(results) - outcomes["rested"]
    assert outcomes["rested"] <= 10, outcomes
    assert outcomes["error"] == sum(failing[:calls])  # exactly the injected faults became errors
    assert outcomes["answer"] == calls - sum(failing[:calls])
    assert len(results) > 1000
    by_api = Counter((api, outcome) for api, _, _, outcome in results)
    assert all(by_api[(api, kind)] for api in ROUTES for kind in ("answer", "error")), by_api

    # /metrics counts what the clients saw, per route, status and stream flag, and every upstream error once.
    seen = Counter((api, status, stream) for api, status, stream, _ in results)
    settled(gw, sum(before.values()) + len(results), "the load")
    assert api_counts(gw) - before == seen, (api_counts(gw) - before, seen)
    # An upstream 400 (Kiro refused the request) is the client's error, not counted as an upstream failure.
    refused = sum(1 for _, status, _, outcome in results if status == 400 and outcome == "error")
    assert upstream_error_total(gw) - errors_before == outcomes["error"] + outcomes["rested"] - refused

    # Memory comes back: nothing per request is kept once the load is over.
    wait_for(lambda: fake_upstream.stats()["open_streams"] == 0, what="every upstream stream to close")
    after_rss = rss_kb(pid)
    errors = Counter(f"{api} {status} {'stream' if stream else 'whole'}" for api, status, stream, outcome in results
                     if outcome in ("error", "rested"))
    report = {"requests": len(results), "outcomes": dict(outcomes), "by_api": {f"{a} {o}": n for (a, o), n in
                                                                               by_api.items()},
              "errors": dict(errors), "baseline_rss_kb": baseline_rss, "after_rss_kb": after_rss,
              "upstream_calls": calls, "upstream_errors_counted": upstream_error_total(gw) - errors_before}
    record_property("load_report", json.dumps(report))
    assert after_rss <= baseline_rss * 1.15 + 8 * 1024, report
