"""The fake Kiro upstream itself: real HTTP on loopback, valid frames, token rotation and scripted faults."""
from __future__ import annotations

import json
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.kiro.process import FakeKiro
from tests.helpers.fixtures import capture_stream
from tests.helpers.kiro_chat import ACCESS, BODY, REFRESH, chat

pytestmark = pytest.mark.integration


def decode(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a complete event stream into (headers, payload), asserting lengths and both CRCs."""
    frames, pos = [], 0
    while pos < len(data):
        total, header_len, prelude_crc = struct.unpack_from(">III", data, pos)
        assert zlib.crc32(data[pos:pos + 8]) == prelude_crc
        frame = data[pos:pos + total]
        assert len(frame) == total
        assert zlib.crc32(frame[:-4]) == struct.unpack(">I", frame[-4:])[0]
        headers, at = {}, 12
        while at < 12 + header_len:
            name_len = frame[at]
            name = frame[at + 1:at + 1 + name_len].decode()
            assert frame[at + 1 + name_len] == 7  # Kiro uses string headers only
            (value_len,) = struct.unpack_from(">H", frame, at + 2 + name_len)
            start = at + 4 + name_len
            headers[name] = frame[start:start + value_len].decode()
            at = start + value_len
        frames.append((headers, frame[12 + header_len:-4]))
        pos += total
    return frames


def events(data: bytes) -> list[tuple[str, dict]]:
    """(event type or exception type, JSON payload) per frame."""
    return [(h.get(":event-type") or h.get(":exception-type"), json.loads(p)) for h, p in decode(data)]


@pytest.fixture(scope="module")
def server():
    with FakeKiro.start(access_tokens=[ACCESS], refresh_token=REFRESH) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.reset()
    return server


def test_default_answer_is_a_valid_event_stream(fake):
    response = chat(fake)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["x-amzn-RequestId"]
    frames = decode(response.content)
    assert frames[0][0] == {":event-type": "initial-response", ":content-type": "application/x-amz-json-1.0",
                            ":message-type": "event"}
    got = events(response.content)
    texts = [p for name, p in got if name == "assistantResponseEvent"]
    assert len(texts) > 1
    assert "".join(p["content"] for p in texts) == "Hello! I am the fake Kiro."
    assert {p["modelId"] for p in texts} == {"claude-haiku-4.5"}
    assert got[-2] == ("contextUsageEvent", {"contextUsagePercentage": 1.5})
    assert got[-1] == ("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01})
    stats = fake.stats()
    assert stats["chat_requests"] == 1 and stats["frames_sent"] == len(frames) and stats["open_streams"] == 0
    recorded = fake.requests()[-1]
    assert recorded["body"] == BODY and recorded["headers"]["authorization"] == f"Bearer {ACCESS}"
    assert recorded["status"] == 200


@pytest.mark.parametrize("name", ["06", "14", "16"])
def test_fixture_replay_is_byte_exact(fake, name):
    fake.script({"fixture": name})
    response = chat(fake)
    assert response.content == capture_stream(name)


def test_unknown_token_is_403_access_denied(fake):
    response = chat(fake, token="aoaAAAAAnope")
    assert response.status_code == 403
    assert response.json() == {"__type": "com.amazon.coral.service#AccessDeniedException",
                               "message": "The bearer token included in the request is invalid."}


@pytest.mark.parametrize("body", ["{not json", {"conversationState": {"currentMessage": {
    "userInputMessage": {"content": "hi"}}}}])
def test_malformed_request_is_400_validation(fake, body):
    response = chat(fake, body=body)
    assert response.status_code == 400
    assert response.json() == {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                               "message": "Improperly formed request.", "reason": None}


def with_history(*messages):
    return {"conversationState": {**BODY["conversationState"], "history": list(messages)}}


USER = {"userInputMessage": {"content": "list it", "origin": "AI_EDITOR"}}
ASSISTANT = {"assistantResponseMessage": {"content": "Done."}}


@pytest.mark.parametrize("body,reason", [
    (with_history(USER, {"assistantResponseMessage": {"content": " ", "toolUses": [
        {"toolUseId": "t1", "name": "ls", "input": {"path": None}}]}}), "null at body.conversationState.history"),
    (with_history(USER, ASSISTANT, ASSISTANT, USER), "history does not alternate"),
    (with_history(USER, {"assistantResponseMessage": {"content": ""}}), "empty assistant message 1"),
], ids=["null-in-tool-input", "two-assistants", "empty-assistant"])
def test_a_body_breaking_kiros_rules_is_refused_like_kiro_and_the_reason_kept(fake, body, reason):
    fake.script({"texts": ["kept for the next good request"]})
    response = chat(fake, body=body)
    assert response.status_code == 400
    assert response.json() == {"__type": "com.amazon.kiro.runtimeservice#ValidationException",
                               "message": "Improperly formed request.", "reason": None}
    (why,) = fake.stats()["malformed"]
    assert reason in why
    assert fake.requests()[-1]["malformed"] == why
    good = chat(fake, body=with_history(USER, ASSISTANT))  # the refusal used no scripted answer
    assert "".join(p["content"] for n, p in events(good.content) if n == "assistantResponseEvent") == \
        "kept for the next good request"
    assert len(fake.stats()["malformed"]) == 1


def test_social_refresh_rotates_and_spent_token_is_invalid_grant(fake):
    first = requests.post(fake.refresh_url, json={"refreshToken": REFRESH}, timeout=5)
    assert first.status_code == 200
    issued = first.json()
    assert issued["accessToken"] == "aoaAAAAAfake-access-1" and issued["refreshToken"] == "aorAAAAAfake-refresh-1"
    assert issued["expiresIn"] == 3600 and issued["profileArn"].endswith("profile/EHGA3GRVQMUK")
    assert chat(fake, token=issued["accessToken"]).status_code == 200
    assert chat(fake, token=ACCESS).status_code == 403
    again = requests.post(fake.refresh_url, json={"refreshToken": REFRESH}, timeout=5)
    assert again.status_code == 401
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token provided"}
    assert fake.stats()["refresh_calls"] == 2


def test_oidc_refresh_rotates_and_counts(fake):
    body = {"clientId": "cid", "clientSecret": "secret", "grantType": "refresh_token", "refreshToken": REFRESH}
    first = requests.post(fake.oidc_url, json=body, timeout=5)
    assert first.json() == {"accessToken": "aoaAAAAAfake-access-1", "expiresIn": 3600,
                            "refreshToken": "aorAAAAAfake-refresh-1", "tokenType": "Bearer"}
    again = requests.post(fake.oidc_url, json=body, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert fake.stats()["oidc_calls"] == 2 and fake.stats()["refresh_calls"] == 0


def test_scripted_429_with_body_and_retry_after_then_default(fake):
    body = {"__type": "ThrottlingException", "message": "Too many requests, please wait before trying again.",
            "reason": "USER_REQUEST_RATE_EXCEEDED"}
    fake.script({"status": 429, "json": body, "headers": {"Retry-After": "7"}})
    response = chat(fake)
    assert response.status_code == 429 and response.json() == body
    assert response.headers["Retry-After"] == "7"
    assert chat(fake).status_code == 200


def test_hold_after_sends_first_frames_then_waits_for_release(fake):
    fake.script({"texts": ["a", "b", "c"], "hold_after": 2})
    with chat(fake, stream=True) as response:
        chunks = response.iter_content(chunk_size=None)
        received = b""
        while len(decode_prefix(received)) < 2:
            received += next(chunks)
        assert [h[":event-type"] for h, _ in decode_prefix(received)] == ["initial-response",
                                                                          "assistantResponseEvent"]
        assert fake.stats()["held_streams"] == 1
        assert fake.release() == 1
        received += b"".join(chunks)
    assert "".join(p.get("content", "") for _, p in events(received)) == "abc"


def decode_prefix(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The complete frames at the start of `data`."""
    pos = 0
    while pos + 4 <= len(data) and pos + struct.unpack_from(">I", data, pos)[0] <= len(data):
        pos += struct.unpack_from(">I", data, pos)[0]
    return decode(data[:pos])


def test_reset_before_is_a_connection_error(fake):
    fake.script({"fault": "reset_before"})
    with pytest.raises(requests.ConnectionError):
        chat(fake)
    assert chat(fake).status_code == 200


def test_reset_after_and_truncate_cut_the_stream(fake):
    fake.script({"fault": "reset_after", "fault_after": 2}, {"fault": "truncate", "fault_after": 2})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        chat(fake).content
    cut = chat(fake).content
    complete = decode_prefix(cut)
    assert len(complete) == 2
    assert len(cut) > sum(12 + len(h) + len(p) for h, p in complete)  # half of the third frame came too


def test_stall_keeps_quiet_until_the_client_gives_up(fake):
    fake.script({"fault": "stall", "fault_after": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        chat(fake, timeout=(2, 0.3)).content
    deadline = time.monotonic() + 3
    while fake.stats()["open_streams"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.stats()["open_streams"] == 0  # the fake noticed the client leave


def test_bad_crc_unknown_event_chunking_and_bulk(fake):
    fake.script({"fault": "bad_crc", "fault_after": 1}, {"fault": "unknown_event"},
                {"chunk_size": 7, "pace": 0.001}, {"frames_count": 5, "frame_bytes": 300, "context_usage": None})
    with pytest.raises(AssertionError):
        decode(chat(fake).content)
    assert [name for name, _ in events(chat(fake).content)][1] == "mysteryEvent"
    assert "".join(p.get("content", "") for _, p in events(chat(fake).content)) == "Hello! I am the fake Kiro."
    bulk = chat(fake).content
    assert len(decode(bulk)) == 6 and len(bulk) == 133 + 5 * 300  # initial-response, then 5 frames of 300 bytes


def test_non_eventstream_and_repeat_and_bad_spec(fake):
    fake.script({"fault": "non_eventstream", "json": {"message": "oops"}, "repeat": 2})
    for _ in range(2):
        response = chat(fake)
        assert response.status_code == 200 and response.json() == {"message": "oops"}
    assert chat(fake).headers["Content-Type"] == "application/vnd.amazon.eventstream"
    with pytest.raises(ValueError, match="unknown spec keys"):
        fake.script({"txts": ["typo"]})


def test_200_concurrent_streams_all_complete(fake):
    fake.set_default({"texts": ["x", "y", "z", "w"], "pace": 0.05})
    started = time.monotonic()

    def one(_: int) -> str:
        with chat(fake, stream=True) as response:
            return "".join(p.get("content", "") for _, p in events(response.content))

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    assert results == ["xyzw"] * 200
    stats = fake.stats()
    assert stats["chat_requests"] == 200 and stats["open_streams"] == 0
    assert stats["max_open_streams"] > 50  # served side by side, not one after another
    assert time.monotonic() - started < 10
