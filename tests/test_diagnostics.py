"""The diagnostics' cheap half: the clock from a Date header, and what /health warns of without a network call."""
from __future__ import annotations

from email.utils import formatdate
from pathlib import Path

from ki2api.diagnostics.check import Check, failed, passed, skipped
from ki2api.diagnostics.local import MAX_SKEW, health_warnings, skew
from ki2api.settings import Settings
from tests.helpers.credentials import ACCESS, REFRESH

CHAT = {"model": "claude-sonnet-4.5", "messages": [{"role": "user", "content": "hi"}]}


def row(name="default", loaded=True, error=None):
    return {"name": name, "credential": {"loaded": loaded, "error": error}}


def test_skew_is_kiros_clock_minus_ours():
    assert skew(formatdate(1_800_000_600, usegmt=True), 1_800_000_000.0) == 600.0
    assert skew(formatdate(1_800_000_000, usegmt=True), 1_800_000_090.5) == -90.5
    assert skew(None, 0.0) is None and skew("yesterday-ish", 0.0) is None


def test_a_check_as_data():
    assert failed("clock", None, "off", "fix it").as_dict() == {"check": "clock", "subject": None, "ok": False,
                                                                "detail": "off", "fix": "fix it", "skipped": False}
    assert skipped("chat", "a", "not asked").ok and skipped("chat", "a", "not asked").skipped
    assert passed("token", "a", "fine").label == "token a" and Check("port", None, True, "").label == "port"


def test_health_warnings_say_nothing_when_all_is_well(tmp_path):
    settings = Settings(state_dir=str(tmp_path / "state"))
    assert health_warnings([row()], settings, (formatdate(usegmt=True), __import__("time").time())) == []
    assert health_warnings([row()], settings, None) == []  # no answer from Kiro yet: nothing to compare


def test_health_warns_of_an_unreadable_login_a_clock_that_is_off_and_an_unwritable_state(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = Settings(state_dir=str(blocker / "state"))
    warnings = health_warnings([row(), row("b", False, "b.json is not valid JSON")], settings,
                               (formatdate(1_800_000_000 + MAX_SKEW + 60, usegmt=True), 1_800_000_000.0))
    assert warnings[0] == ("the login of Kiro account b cannot be read (b.json is not valid JSON): run "
                           "`python -m ki2api doctor`")
    assert warnings[1].startswith("this clock is 2 min behind Kiro's (from its last answer's Date header)")
    assert warnings[2].startswith(f"the state directory {blocker / 'state'} is not writable")


def test_health_compares_the_clock_with_kiros_last_answer(client, auth, fake_upstream):
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH, clock_skew=-600)
    assert client.get("/health").get_json()["status"] == "ok"  # no answer from Kiro yet
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    body = client.get("/health").get_json()
    assert body["status"] == "degraded"
    assert [w for w in body["warnings"] if "clock" in w] == [
        "this clock is 10 min ahead of Kiro's (from its last answer's Date header): set the time right (NTP), or "
        "token expiry is judged wrong"]
    fake_upstream.reset(access_tokens=[ACCESS], refresh_token=REFRESH)
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert client.get("/health").get_json()["status"] == "ok"  # the next answer's Date clears it


def test_health_points_to_doctor_when_the_login_cannot_be_read(client, token_file: Path):
    token_file.write_text("{broken")
    body = client.get("/health").get_json()
    assert any(w.startswith("the login of Kiro account default cannot be read (") and w.endswith(
        "run `python -m ki2api doctor`") for w in body["warnings"])
