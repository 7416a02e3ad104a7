"""TokenStore: which copy of a credential wins (lineage, expiry), and where the refresh lock lives."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from ki2api.accounts.token_manager import TokenManager
from ki2api.accounts.token_store import TokenStore
from ki2api.settings import Settings
from tests.helpers.credentials import REFRESH, write_token_file
from tests.helpers.together import all_at_once, tokens_in_processes

NEW_ACCESS, NEW_REFRESH = "aoaAAAAAfake-access-1", "aorAAAAAfake-refresh-1"
UNROTATED = "aoaAAAAAnot-rotated-access"
# A refresh answer that keeps the refresh token (no refreshToken field), as Kiro may send.
NO_ROTATION = {"refresh_status": 200, "refresh_body": json.dumps({"accessToken": UNROTATED, "expiresIn": 3600}),
               "refresh_delay": 0.3}


@pytest.fixture
def env_settings(settings: Settings, tmp_path: Path) -> Settings:
    """KIRO_REFRESH_TOKEN alone, no token file."""
    return replace(settings, token_file=str(tmp_path / "absent.json"), refresh_token=REFRESH)


# -- a refresh that does not rotate the refresh token ----------------------------------------------------------

def test_env_refresh_token_without_rotation_is_refreshed_once_by_separate_processes(env_settings, fake_upstream):
    fake_upstream.reset(**NO_ROTATION)
    assert tokens_in_processes([env_settings] * 3) == [UNROTATED] * 3
    assert fake_upstream.stats()["refresh_calls"] == 1
    restarted = TokenManager(env_settings, requests.Session()).current()  # a restart reads the shared copy
    assert (restarted.access_token, restarted.refresh_token) == (UNROTATED, REFRESH)
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_other_workers_stop_sending_the_stale_env_access_token(env_settings, fake_upstream):
    """KIRO_ACCESS_TOKEN (of unknown expiry) was rejected; one worker refreshed without rotation; every other
    worker must now send the refreshed token, not the env one, and must not refresh again."""
    fake_upstream.reset(**NO_ROTATION)
    settings = replace(env_settings, access_token="aoaAAAAAenv-stale-access")
    first, second = (TokenManager(settings, requests.Session()) for _ in range(2))
    stale = second.current()
    assert stale.access_token == "aoaAAAAAenv-stale-access"
    assert first.refresh(first.current()).access_token == UNROTATED
    assert second.current().access_token == UNROTATED
    assert second.refresh(stale).access_token == UNROTATED  # its own 403 on the stale token: no second call
    assert fake_upstream.stats()["refresh_calls"] == 1


def test_a_token_file_refreshed_without_rotation_keeps_the_later_access_token(settings, token_file, fake_upstream):
    write_token_file(token_file, expires_in=-60)
    token_file.chmod(0o400)  # the refreshed copy lives only in the state directory, beside the older file
    fake_upstream.reset(**NO_ROTATION)
    assert all_at_once(6, lambda i: TokenManager(settings, requests.Session()).current().access_token) == \
        [UNROTATED] * 6
    assert fake_upstream.stats()["refresh_calls"] == 1


# -- the refresh lock beside the token file --------------------------------------------------------------------

def test_two_deployments_with_their_own_state_dirs_refresh_a_shared_token_file_once(settings, token_file, tmp_path,
                                                                                     fake_upstream):
    """The host and a container both mount ~/.aws/sso/cache but keep separate state directories."""
    write_token_file(token_file, expires_in=-60)
    fake_upstream.reset(refresh_delay=0.5)
    deployments = [replace(settings, state_dir=str(tmp_path / name)) for name in ("host", "compose")]
    assert tokens_in_processes(deployments * 2) == [NEW_ACCESS] * 4
    assert fake_upstream.stats()["refresh_calls"] == 1
    assert json.loads(token_file.read_text())["refreshToken"] == NEW_REFRESH


def test_the_refresh_lock_of_a_token_file_is_beside_it(settings, token_file):
    store = TokenStore(str(token_file), settings.state_dir, None, None)
    with store.lock(5):
        assert (token_file.parent / f"{token_file.name}.lock").exists()
    assert not any(Path(settings.state_dir).glob("*.lock"))


def test_an_unwritable_token_directory_keeps_the_lock_in_the_state_dir(settings):
    token_file = Path("/proc/kiro-auth-token.json")  # a directory nobody can create files in, not even root
    store = TokenStore(str(token_file), settings.state_dir, None, None)
    with store.lock(5):
        assert len(list(Path(settings.state_dir).glob("file-*.lock"))) == 1


@pytest.mark.parametrize("source", ["env", "accounts"])
def test_env_and_inline_credentials_lock_in_the_state_dir(settings, tmp_path, source):
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"name": "bob", "refreshToken": REFRESH}]))
    store = TokenStore(settings.token_file, settings.state_dir, None, REFRESH) if source == "env" else \
        TokenStore("", settings.state_dir, None, None, name="bob", accounts_file=str(accounts))
    with store.lock(5):
        assert len(list(Path(settings.state_dir).glob(f"{source}-*.lock"))) == 1
    assert not list(tmp_path.glob("*.lock")) and not list(Path(settings.token_file).parent.glob("*.lock"))


# -- leftovers of a write that was killed before its rename -------------------------------------------------------

def test_a_start_removes_the_temporary_files_a_killed_write_left_and_only_those(token_file, tmp_path):
    """ki2api writes the token file as `.NAME.<random>.tmp` then renames it; a kill in between leaves the temporary."""
    folder = token_file.parent
    stale = folder / f".{token_file.name}.k1ll3d.tmp"
    fresh = folder / f".{token_file.name}.wr1t1ng.tmp"  # another worker's write in progress
    ide_own = folder / f"{token_file.name}.tmp"  # not a name ki2api writes: never touched
    for path in (stale, fresh, ide_own):
        path.write_text("{}")
    an_hour_ago = stale.stat().st_mtime - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(ide_own, (an_hour_ago, an_hour_ago))
    before = token_file.read_text()

    TokenStore(str(token_file), str(tmp_path / "state"), None, None)

    assert not stale.exists()
    assert fresh.exists() and ide_own.exists()
    assert token_file.read_text() == before
