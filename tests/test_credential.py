"""credential.py: reading IDE-shaped fields, and finding an IdC client registration beside the token file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ki2api.accounts.credential import find_client


def registration(path: Path, client_id: str, modified: float) -> Path:
    """An IdC client registration written at `modified` (epoch seconds)."""
    path.write_text(json.dumps({"clientId": client_id, "clientSecret": f"{client_id}-secret"}))
    os.utime(path, (modified, modified))
    return path


@pytest.mark.parametrize("newest", ["first", "second"])
def test_without_a_client_id_hash_the_most_recently_modified_registration_is_used(tmp_path, newest):
    """Files created one after the other get ascending inode numbers; whichever was modified last must win,
    also when it is the older inode."""
    now = time.time()
    token_file = tmp_path / "kiro-auth-token.json"
    token_file.write_text("{}")
    for name in ("first", "second"):
        registration(tmp_path / f"{name}.json", f"client-{name}", now if name == newest else now - 3600)
    assert find_client(token_file, None)["clientId"] == f"client-{newest}"


def test_registrations_modified_at_the_same_instant_are_ordered_by_name(tmp_path):
    token_file = tmp_path / "kiro-auth-token.json"
    for name in ("b", "a", "c"):
        registration(tmp_path / f"{name}.json", f"client-{name}", 1_700_000_000)
    assert find_client(token_file, None)["clientId"] == "client-c"


def test_a_client_id_hash_names_the_registration(tmp_path):
    token_file = tmp_path / "kiro-auth-token.json"
    registration(tmp_path / "a1b2.json", "client-named", 1_700_000_000)
    registration(tmp_path / "newer.json", "client-newer", time.time())
    assert find_client(token_file, "a1b2")["clientId"] == "client-named"
    assert find_client(token_file, "../a1b2")["clientId"] == "client-named"  # only a name, never a path
