"""ki2api under gunicorn with gevent workers, driven by the official openai SDK."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.helpers.credentials import KEY, write_token_file

pytestmark = pytest.mark.integration


def sdk(gateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)


def test_gunicorn_runs_gevent_workers(gateway):
    assert "Using worker: ki2api.web.worker.Worker" in gateway.log_text()  # gunicorn's gevent worker, subclassed


def test_list_models(gateway):
    ids = [m.id for m in sdk(gateway).models.list()]
    assert "claude-sonnet-4-5-20250929" in ids and "claude-3-5-haiku-20241022" in ids


def test_complete(gateway, fake_upstream):
    fake_upstream.script({"texts": ["The answer", " is 42."]})
    result = sdk(gateway).chat.completions.create(
        model="claude-3-5-haiku-20241022", messages=[{"role": "system", "content": "Be terse."},
                                                    {"role": "user", "content": "Meaning of life?"}])
    assert result.choices[0].message.content == "The answer is 42."
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    sent = fake_upstream.requests()[-1]
    assert sent["headers"]["authorization"] == "Bearer aoaAAAAAtest-access-token-0001"
    assert sent["body"]["conversationState"]["currentMessage"]["userInputMessage"]["modelId"] == "claude-haiku-4.5"


def test_stream(gateway, fake_upstream):
    fake_upstream.script({"fixture": "06"})
    stream = sdk(gateway).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 41  # one chunk per upstream text frame of the capture
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens > 0


def test_wrong_key(gateway):
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(gateway, key="nope").models.list()
    assert info.value.status_code == 401


def test_first_chunk_arrives_while_the_upstream_is_still_holding_the_rest(gateway, fake_upstream):
    fake_upstream.script({"texts": [f"piece{i} " for i in range(10)], "hold_after": 2})
    stream = sdk(gateway).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
            if len(received) == 1:
                # The fake has sent only its first frames and waits for us: nothing was collected first.
                assert fake_upstream.stats()["open_streams"] == 1
                fake_upstream.release()
    assert received == [f"piece{i} " for i in range(10)]


def test_first_chunk_long_before_the_last_frame_with_100ms_pacing(gateway, fake_upstream):
    fake_upstream.script({"texts": [f"w{i} " for i in range(10)], "pace": 0.1})
    stream = sdk(gateway).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}], stream=True)
    first_at = None
    for chunk in stream:
        if first_at is None and chunk.choices and chunk.choices[0].delta.content:
            first_at = time.time()
    last_frame_at = fake_upstream.stats()["last_frame_sent_at"]
    # Ten frames 100 ms apart: the first token must be with us ~0.9 s before the last frame leaves.
    assert last_frame_at - first_at > 0.5


def served_chats(directory) -> dict[int, list[dict]]:
    """The chat requests each worker process answered, by pid: the status page's per-worker request files."""
    served: dict[int, list[dict]] = {}
    for path in directory.glob("requests-*.jsonl"):
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        served[int(path.stem.split("-")[1])] = [e for e in entries if e.get("path") == "/v1/chat/completions"]
    return {pid: entries for pid, entries in served.items() if entries}


@pytest.mark.parametrize("workers", [1, 4])
def test_refresh_happens_once_for_50_concurrent_requests(start_gateway, fake_upstream, token_file, tmp_path, workers):
    """50 requests send a token Kiro has revoked (it looks valid by its expiry, so each one really sends it)
    and all get a 403 while the one refresh is held by the fake; only then is the refresh answered. With 4
    workers taking at most 20 connections each, the 50 stale requests were spread over several workers."""
    write_token_file(token_file, expires_in=3600)
    fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAtest-refresh-token-0001", refresh_hold=True)
    recent = tmp_path / "recent"
    gw = start_gateway(workers=workers, PROMETHEUS_MULTIPROC_DIR=str(recent),
                       WORKER_CONNECTIONS="20" if workers > 1 else "4000")

    def ask(i: int) -> int:
        r = requests.post(f"{gw.url}/v1/chat/completions", timeout=60, headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"q{i}"}]})
        return r.status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = [pool.submit(ask, i) for i in range(50)]
        deadline = time.monotonic() + 30
        while (stats := fake_upstream.stats())["chat_requests"] < 50 or stats["held_refreshes"] < 1:
            assert time.monotonic() < deadline, f"not every request sent the stale token: {stats}"
            time.sleep(0.02)
        assert stats["chat_requests"] == 50 and stats["refresh_calls"] == 1  # all stale, all waiting
        fake_upstream.release()
        statuses = [answer.result() for answer in answers]
    assert statuses == [200] * 50
    assert fake_upstream.stats()["refresh_calls"] == 1
    saved = json.loads(token_file.read_text())
    assert saved["refreshToken"] == "aorAAAAAfake-refresh-1"
    served = {pid: len(entries) for pid, entries in served_chats(recent).items()}
    assert sum(served.values()) == 50
    if workers > 1:  # every one was in a worker before the release, at most 20 to a worker: 3 workers at least
        assert len(served) >= 3 and max(served.values()) <= 20, served
