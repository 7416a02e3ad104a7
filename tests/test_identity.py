"""Each account's machine id: random, its own, created once in the shared state, kept over restarts, overridable."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ki2api.accounts.config import account_specs
from ki2api.accounts.file_state import FileState
from ki2api.accounts.identity import MachineId, is_machine_id
from ki2api.app import create_app
from ki2api.settings import ConfigError, Settings
from tests.helpers.accounts import access, fake_accounts, refresh, write_token_dir

REPO = Path(__file__).resolve().parents[1]
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
MINE = "0123456789abcdef" * 4


def test_each_account_gets_its_own_random_id_kept_in_the_state_dir(tmp_path):
    state = FileState(tmp_path)
    alice, bob = state.machine_id("alice"), state.machine_id("bob")
    assert is_machine_id(alice) and is_machine_id(bob) and alice != bob
    assert state.machine_id("alice") == alice
    assert FileState(tmp_path).machine_id("alice") == alice  # another process, or after a restart
    assert json.loads((tmp_path / "machine-ids.json").read_text()) == {"alice": alice, "bob": bob}
    assert FileState(tmp_path / "elsewhere").machine_id("alice") != alice  # another installation: another id


def test_processes_racing_for_a_new_id_create_one(tmp_path):
    code = ("import sys; from ki2api.accounts.file_state import FileState; "
            "print(FileState(sys.argv[1]).machine_id('alice'))")
    racers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True) for _ in range(6)]
    ids = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert len(ids) == 1 and is_machine_id(ids.pop())


def test_a_configured_id_wins_and_is_not_stored(tmp_path):
    state = FileState(tmp_path)
    assert MachineId("alice", state, MINE).value() == MINE
    assert not (tmp_path / "machine-ids.json").exists()


def test_an_unusable_state_dir_still_gives_one_id_per_process(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    identity = MachineId("alice", FileState(blocker / "state"))
    first = identity.value()
    assert is_machine_id(first) and identity.value() == first
    assert "could not keep its machine id" in caplog.text


def write_accounts(path: Path, *entries: dict) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_the_accounts_file_takes_machine_id_and_limits(tmp_path):
    path = write_accounts(tmp_path / "accounts.json",
                          {"name": "a", "refreshToken": "aorX", "machine_id": MINE, "max_concurrency": 2, "rpm": 30},
                          {"name": "b", "refreshToken": "aorY"})
    a, b = account_specs(Settings(accounts_file=str(path)))
    assert (a.machine_id, a.max_concurrency, a.rpm) == (MINE, 2, 30)
    assert (b.machine_id, b.max_concurrency, b.rpm) == (None, None, None)


@pytest.mark.parametrize("entry,words", [
    ({"machine_id": "ABC"}, "machine_id must be 64 lower-case hex"),
    ({"machine_id": MINE.upper()}, "machine_id must be 64 lower-case hex"),
    ({"rpm": 0}, "rpm must be a whole number"),
    ({"max_concurrency": 1.5}, "max_concurrency must be a whole number"),
    ({"rpm": True}, "rpm must be a whole number"),
])
def test_bad_identity_fields_are_refused_naming_the_field(tmp_path, entry, words):
    path = write_accounts(tmp_path / "accounts.json", {"name": "a", "refreshToken": "aorX", **entry})
    with pytest.raises(ConfigError, match=words):
        account_specs(Settings(accounts_file=str(path)))


def test_kiro_machine_id_is_checked():
    assert Settings.from_env({"KIRO_MACHINE_ID": MINE}).machine_id == MINE
    with pytest.raises(ConfigError, match="KIRO_MACHINE_ID"):
        Settings.from_env({"KIRO_MACHINE_ID": "my-laptop"})


def chat_machine_ids(app, fake, auth, count: int) -> dict[str, set[str]]:
    """Send `count` chats; the machine ids the fake Kiro saw, by the account it saw them from."""
    client = app.test_client()
    for _ in range(count):
        assert client.post("/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    seen: dict[str, set[str]] = {}
    for record in fake.requests():
        seen.setdefault(record["account"], set()).add(record["machine_id"])
    return seen


def test_two_accounts_never_share_a_machine_id_and_a_restart_keeps_each(settings, fake_upstream, tmp_path, auth):
    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    write_token_dir(tmp_path / "pool", "alice", "bob")
    pooled = replace(settings, token_dir=str(tmp_path / "pool"))
    seen = chat_machine_ids(create_app(pooled), fake_upstream, auth, 12)
    assert set(seen) == {"alice", "bob"}  # both served (random tie-break: 12 requests make a miss 1 in 2048)
    assert all(len(ids) == 1 for ids in seen.values())  # one id per account, on every request
    alice, bob = seen["alice"].pop(), seen["bob"].pop()
    assert is_machine_id(alice) and is_machine_id(bob) and alice != bob

    fake_upstream.reset(accounts=fake_accounts("alice", "bob"))
    again = chat_machine_ids(create_app(pooled), fake_upstream, auth, 12)  # a restart: a new app, same state
    assert again == {"alice": {alice}, "bob": {bob}}


def test_the_accounts_file_machine_id_is_what_kiro_sees(settings, fake_upstream, tmp_path, auth):
    fake_upstream.reset(accounts=fake_accounts("mine"))
    path = write_accounts(tmp_path / "accounts.json",
                          {"name": "mine", "accessToken": access("mine"), "refreshToken": refresh("mine"),
                           "expiresAt": "2099-01-01T00:00:00.000Z", "machine_id": MINE})
    seen = chat_machine_ids(create_app(replace(settings, accounts_file=str(path))), fake_upstream, auth, 1)
    assert seen == {"mine": {MINE}}
