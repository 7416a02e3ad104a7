"""Token file and refresh-endpoint faults against gunicorn + gevent workers + the fake Kiro.

What must hold: a clear 401 telling the person to log in when there is no usable login, a 503 when the
refresh endpoint misbehaves, ki2api picking up a new login without a restart, a good token file never
replaced by a bad one, and the one unavoidable loss (a crash after Kiro rotated the refresh token but
before ki2api could write it) ending in a clear "log in again" rather than a corrupted file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.helpers.credentials import ACCESS, KEY, REFRESH, iso, write_token_file
from tests.helpers import gateway as gateway_module
from tests.helpers.gateway import free_port
from tests.helpers.faults import DEFAULT_ANSWER, OPENAI, call
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.integration
NEW_ACCESS = "aoaAAAAAide-relogin-access-0002"
NEW_REFRESH = "aorAAAAAide-relogin-refresh-0002"


def ask(gw, stream: bool = False):
    return call(gw, OPENAI.path, OPENAI.body, stream=stream)


def health(gw) -> dict:
    return requests.get(f"{gw.url}/health", timeout=10).json()


def credential_report(gw) -> dict:
    report = health(gw)
    return report.get("credential") or report


def assert_needs_login(reply, *words: str) -> None:
    assert reply.status == 401, reply.body
    assert reply.body["error"]["type"] == "authentication_error"
    message = reply.body["error"]["message"].lower()
    assert "log in" in message, message
    for word in words:
        assert word.lower() in message, message


def ide_logs_in(fake, token_file, access: str = NEW_ACCESS, refresh: str = NEW_REFRESH) -> None:
    """What the Kiro IDE does on a new login: Kiro knows the new tokens, the IDE rewrites its file."""
    fake.reset(access_tokens=[access], refresh_token=refresh)
    write_token_file(token_file, access=access, refresh=refresh)


# --- the token file itself ------------------------------------------------------------------------------------

def test_missing_token_file_is_401_until_the_ide_writes_it(start_gateway, fake_upstream, token_file):
    token_file.unlink()
    gw = start_gateway()
    reply = ask(gw)
    assert_needs_login(reply, str(token_file))
    report = credential_report(gw)
    assert report["loaded"] is False and report["needs_login"] is True
    ide_logs_in(fake_upstream, token_file)
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER  # no restart needed


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2, 3]", "\x00\x01garbage"],
                         ids=["empty", "not-json", "not-an-object", "binary"])
def test_unreadable_token_file_is_401_until_the_ide_rewrites_it(start_gateway, fake_upstream, token_file, content):
    token_file.write_text(content)
    gw = start_gateway()
    reply = ask(gw)
    assert_needs_login(reply, str(token_file))
    assert credential_report(gw)["needs_login"] is True
    assert token_file.read_text() == content  # ki2api never "repairs" the IDE's file
    ide_logs_in(fake_upstream, token_file)
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER


def test_token_file_without_tokens_is_401_and_no_refresh_is_tried(start_gateway, fake_upstream, token_file):
    token_file.write_text(json.dumps({"authMethod": "social", "provider": "Github"}))
    gw = start_gateway()
    assert_needs_login(ask(gw))
    assert fake_upstream.stats()["refresh_calls"] == 0


def test_access_token_alone_is_used_as_is(start_gateway, fake_upstream, token_file):
    token_file.write_text(json.dumps({"accessToken": ACCESS}))
    gw = start_gateway()
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
    assert fake_upstream.requests()[-1]["headers"]["authorization"] == f"Bearer {ACCESS}"


def test_expired_token_without_refresh_token_is_401_and_no_refresh_is_tried(start_gateway, fake_upstream,
                                                                           token_file):
    expired = iso(datetime.now(timezone.utc) - timedelta(hours=1))
    token_file.write_text(json.dumps({"accessToken": ACCESS, "expiresAt": expired, "authMethod": "social"}))
    gw = start_gateway()
    assert_needs_login(ask(gw))
    assert fake_upstream.stats()["refresh_calls"] == 0
    assert fake_upstream.stats()["chat_requests"] == 0  # a certainly-dead token is not even tried
    assert credential_report(gw)["needs_login"] is True


def test_ide_rewriting_the_file_while_requests_run(start_gateway, fake_upstream, token_file):
    """Twenty streams run while the IDE rewrites the file again and again, in place (not atomically)."""
    fake_upstream.reset(access_tokens=[ACCESS, NEW_ACCESS], refresh_token=REFRESH)
    fake_upstream.set_default({"texts": [f"w{i} " for i in range(20)], "pace": 0.02})
    gw = start_gateway()
    stop = threading.Event()
    rewrites = 0

    def ide() -> None:
        nonlocal rewrites
        while not stop.is_set():
            access = NEW_ACCESS if rewrites % 2 else ACCESS
            with open(token_file, "w") as handle:  # truncate, then write: readers may see a partial file
                handle.write(json.dumps({"accessToken": access, "refreshToken": REFRESH,
                                         "expiresAt": iso(datetime.now(timezone.utc) + timedelta(hours=1)),
                                         "authMethod": "social"}))
            rewrites += 1

    writer = threading.Thread(target=ide)
    writer.start()
    try:
        results: list = [None] * 20

        def client(i: int) -> None:
            results[i] = ask(gw, stream=True)

        clients = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=60)
    finally:
        stop.set()
        writer.join()
    assert rewrites > 20
    expected = "".join(f"w{i} " for i in range(20))
    assert [OPENAI.text(r) for r in results] == [expected] * 20
    assert fake_upstream.stats()["refresh_calls"] == 0
    write_token_file(token_file, access=NEW_ACCESS)
    fake_upstream.reset(access_tokens=[NEW_ACCESS], refresh_token=REFRESH)
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER  # the last login is the one used
    assert fake_upstream.requests()[-1]["headers"]["authorization"] == f"Bearer {NEW_ACCESS}"
    assert "Traceback" not in gw.log_text()


def read_only_gunicorn(directory: str) -> list[str] | None:
    """The gunicorn command run in a private mount namespace where `directory` is a read-only bind mount."""
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {directory} {directory} && "
                            f"mount -o remount,bind,ro {directory} && ! touch {directory}/.probe"],
                           capture_output=True)
    if probe.returncode != 0:
        return None
    script = f'mount --bind "{directory}" "{directory}" && mount -o remount,bind,ro "{directory}" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh", *gateway_module.GUNICORN]


def test_unwritable_token_directory_keeps_the_refreshed_token_in_the_state_dir(start_gateway, fake_upstream,
                                                                              token_file, monkeypatch, tmp_path):
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    command = read_only_gunicorn(str(token_file.parent))
    if command is not None:  # a real read-only directory, even for root
        monkeypatch.setattr(gateway_module, "GUNICORN", command)
    else:  # no mount namespaces: fall back to permissions (root ignores them on directories, not on the file mode)
        token_file.chmod(0o444)
        token_file.parent.chmod(0o555)
    try:
        gw = start_gateway()
        assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
        assert fake_upstream.stats()["refresh_calls"] == 1
        assert token_file.read_bytes() == original  # untouched
        saved = [json.loads(p.read_text()) for p in (tmp_path / "state").glob("file-*.json")]  # the token records
        assert [s["refreshToken"] for s in saved] == ["aorAAAAAfake-refresh-1"]
        assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
        assert fake_upstream.stats()["refresh_calls"] == 1
        gw.stop()
        again = start_gateway()  # a restart finds the rotated token in the state dir, not the spent one
        assert OPENAI.text(ask(again)) == DEFAULT_ANSWER
        assert fake_upstream.stats()["refresh_calls"] == 1
    finally:
        token_file.parent.chmod(0o755)
        token_file.chmod(0o644)


# --- the refresh endpoint -------------------------------------------------------------------------------------

def assert_file_untouched(token_file, original: bytes) -> None:
    assert token_file.read_bytes() == original


def test_refresh_endpoint_down_is_503_and_the_file_is_untouched(start_gateway, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    gw = start_gateway(KIRO_REFRESH_URL=f"http://127.0.0.1:{free_port()}/refreshToken")
    reply = ask(gw)
    assert reply.status == 503 and reply.body["error"]["type"] == "upstream_unavailable", reply.body
    assert "Retry-After" in reply.headers
    assert_file_untouched(token_file, original)
    last = credential_report(gw)["last_refresh"]
    assert last["ok"] is False


def test_refresh_endpoint_down_but_token_still_valid_keeps_serving(start_gateway, fake_upstream, token_file):
    write_token_file(token_file, expires_in=120)  # inside the 300 s refresh margin, not yet expired
    original = token_file.read_bytes()
    gw = start_gateway(KIRO_REFRESH_URL=f"http://127.0.0.1:{free_port()}/refreshToken")
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
    assert_file_untouched(token_file, original)


def test_slow_refresh_endpoint_is_503_within_the_refresh_timeout(start_gateway, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH, refresh_delay=5)
    gw = start_gateway(TOKEN_REFRESH_TIMEOUT="1")
    reply = ask(gw)
    assert reply.status == 503, reply.body
    assert "did not answer within 1 s" in reply.body["error"]["message"]
    assert_file_untouched(token_file, original)


@pytest.mark.parametrize("status,body", [(200, "<html>maintenance</html>"), (200, '{"unexpected": true}'),
                                         (200, '{"accessToken": "", "expiresIn": 3600}'),
                                         (500, '{"message": "internal"}'), (429, "slow down")],
                         ids=["html", "no-token", "empty-token", "500", "429"])
def test_refresh_endpoint_garbage_is_503_and_the_file_is_untouched(start_gateway, fake_upstream, token_file,
                                                                   status, body):
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH, refresh_status=status, refresh_body=body)
    gw = start_gateway()
    reply = ask(gw)
    assert reply.status == 503 and reply.body["error"]["type"] == "upstream_unavailable", reply.body
    assert_file_untouched(token_file, original)
    assert not list((token_file.parent).glob(".*.tmp"))  # no temporary file left behind


def test_invalid_grant_is_401_log_in_again_and_is_not_retried(start_gateway, fake_upstream, token_file):
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    fake_upstream.reset(access_tokens=[], refresh_token="aorAAAAAsomeone-else-refreshed-it")
    gw = start_gateway()
    assert_needs_login(ask(gw))
    assert_needs_login(ask(gw))
    assert fake_upstream.stats()["refresh_calls"] == 1  # a dead refresh token is sent once, never again
    assert credential_report(gw)["needs_login"] is True
    assert_file_untouched(token_file, original)
    ide_logs_in(fake_upstream, token_file)
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
    assert credential_report(gw)["needs_login"] is False


# --- a crash between Kiro's rotation and ki2api's write-back --------------------------------------------------

def worker_pids(gw) -> list[int]:
    return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", gw.log_text())]


def test_worker_killed_after_rotation_before_write_back(start_gateway, fake_upstream, token_file):
    """Kiro has rotated the refresh token; the worker dies before it can write the answer down.

    The old refresh token is spent upstream and the new one died with the worker. The file must still be
    the intact old login (never half-written), and ki2api must say "log in again" (docs/accounts.md, "Credentials and refresh"),
    try the spent token only once, and take the new login from the IDE without a restart.
    """
    write_token_file(token_file, expires_in=-60)
    original = token_file.read_bytes()
    fake_upstream.reset(access_tokens=[], refresh_token=REFRESH, refresh_hold=True)
    gw = start_gateway()
    first_worker = worker_pids(gw)[-1]
    outcome: list = []

    def pending_request() -> None:
        try:
            outcome.append(ask(gw))
        except requests.RequestException as exc:  # the worker serving it is about to be killed
            outcome.append(exc)

    pending = threading.Thread(target=pending_request, daemon=True)
    pending.start()
    wait_for(lambda: fake_upstream.stats()["held_refreshes"] == 1, what="the refresh to be rotated and held")
    assert fake_upstream.stats()["refresh_token"] == "aorAAAAAfake-refresh-1"  # rotated: REFRESH is spent now
    os.kill(first_worker, signal.SIGKILL)
    pending.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)  # its client saw the crash
    wait_for(lambda: len(worker_pids(gw)) == 2, what="gunicorn to boot a new worker")
    fake_upstream.release()
    assert_file_untouched(token_file, original)
    assert json.loads(original)["refreshToken"] == REFRESH
    wait_for(lambda: _answers(gw), what="the new worker to answer")
    reply = ask(gw)
    assert_needs_login(reply)
    assert fake_upstream.stats()["refresh_calls"] == 2  # the held one, and one try with the spent token
    assert credential_report(gw)["needs_login"] is True
    ide_logs_in(fake_upstream, token_file)
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER


def _answers(gw) -> bool:
    try:
        return requests.get(f"{gw.url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_good_file_mode_and_fields_survive_a_refresh(start_gateway, fake_upstream, token_file):
    """The write-back keeps the IDE's other fields and the file's mode, and leaves no temporary file."""
    write_token_file(token_file, expires_in=-60)
    token_file.chmod(0o600)
    before = json.loads(token_file.read_text())
    gw = start_gateway()
    assert OPENAI.text(ask(gw)) == DEFAULT_ANSWER
    after = json.loads(token_file.read_text())
    assert after["refreshToken"] == "aorAAAAAfake-refresh-1" and after["accessToken"] == "aoaAAAAAfake-access-1"
    assert {k: v for k, v in after.items() if k not in ("accessToken", "refreshToken", "expiresAt")} == \
        {k: v for k, v in before.items() if k not in ("accessToken", "refreshToken", "expiresAt")}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", after["expiresAt"])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not list(token_file.parent.glob(".*.tmp"))
    assert KEY not in token_file.read_text()
