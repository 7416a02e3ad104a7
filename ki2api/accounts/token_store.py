"""Kiro credentials at rest: the IDE's token file, env tokens or an accounts-file entry, plus the shared copies.

No HTTP and no policy here: `TokenStore` reads and writes; `token_manager.TokenManager` decides when to refresh.
A refreshed credential may live in several places (the token file, a state file, Redis); `newest` picks the
one to use by its lineage: the fingerprints of the refresh tokens it descends from.

A token file ki2api cannot parse (truncated, not JSON: say, the IDE halfway through writing it) is never
written over. Every load of a good token file keeps a copy of its login in the state directory
(`remember_tokens`), so that while the file is unreadable every worker, even one started since, serves the same
login: that copy, or a newer one a refresh left in the state directory or Redis.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ContextManager, Mapping

from .config import read_entries
from .credential import (Credential, Source, credential_from, find_client, fingerprint, format_expiry,
                         parse_expiry, text_field)
from .file_state import FileState
from .files import StoreError, file_stamp, is_writable, read_json, remove_leftovers, write_json_atomic
from .protocols import TokenShare

log = logging.getLogger(__name__)

LINEAGE_LENGTH = 16
_TOKEN_KEYS = ("accessToken", "refreshToken", "expiresAt", "profileArn")
_LOGIN_KEYS = ("authMethod", "provider", "region", "clientIdHash")  # what a kept copy needs besides the tokens


class MissingCredential(StoreError):
    """There is no credential at all: no token file and no KIRO_* token."""


@dataclass(frozen=True)
class Snapshot:
    """What one load saw: the credential, the token file's JSON (for write-back; None when it must not be
    written), stamps, lineage, and the login's non-secret fields (auth method, region...)."""

    credential: Credential
    file_data: dict[str, Any] | None
    stamp: tuple[Any, ...]
    lineage: tuple[str, ...] = ()
    login: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Candidate:
    tokens: dict[str, Any]
    lineage: tuple[str, ...]
    saved_at: float
    login: dict[str, str] = field(default_factory=dict)

    @property
    def tip(self) -> str | None:
        return self.lineage[-1] if self.lineage else None

    @property
    def expires(self) -> float:
        """When the access token expires (epoch seconds); 0 if unknown, as for env tokens."""
        moment = parse_expiry(self.tokens.get("expiresAt"))
        return moment.timestamp() if moment else 0.0


def _record_candidate(record: Mapping[str, Any]) -> _Candidate:
    tokens = {k: record[k] for k in _TOKEN_KEYS if isinstance(record.get(k), str)}
    lineage = tuple(str(f) for f in record.get("lineage") or () if isinstance(f, str))
    if not lineage and tokens.get("refreshToken"):  # a state file written before lineages existed
        lineage = (fingerprint(tokens["refreshToken"]) or "",)
    saved = parse_expiry(record.get("savedAt"))
    return _Candidate(tokens, lineage, saved.timestamp() if saved else 0.0, _login_of(record))


def newest(candidates: list[_Candidate]) -> _Candidate:
    """The credential to use: one that descends from every other; of copies of the same refresh token, the
    one whose access token expires last; of unrelated logins, the most recently saved."""
    best = candidates[0]
    for other in candidates[1:]:
        if best.tip is not None and best.tip in other.lineage and other.tip != best.tip:
            best = other  # a refresh of what we had
        elif other.tip is not None and other.tip in best.lineage and other.tip != best.tip:
            continue  # an older link of the same chain
        elif other.tip is not None and other.tip == best.tip and other.expires != best.expires:
            # A refresh that did not rotate the refresh token keeps the lineage: the later access token wins,
            # whenever the other copy was saved (env tokens count as saved just now).
            best = other if other.expires > best.expires else best
        elif other.saved_at > best.saved_at:
            best = other  # unrelated logins, or the same one saved twice: the later wins
    return best


def extend_lineage(lineage: tuple[str, ...], refresh_token: str | None) -> tuple[str, ...]:
    """`lineage` with the fingerprint of a (rotated) refresh token appended, capped in length."""
    tip = fingerprint(refresh_token)
    if tip is None or (lineage and lineage[-1] == tip):
        return lineage
    return (lineage + (tip,))[-LINEAGE_LENGTH:]


class TokenStore:
    """Where one account's credential lives: a token file, env tokens or an accounts-file entry; plus shared copies."""

    def __init__(self, token_file: str, state_dir: str, env_access: str | None, env_refresh: str | None,
                 share: TokenShare | None = None, name: str = "default", accounts_file: str | None = None) -> None:
        self.name = name
        self.token_path = Path(token_file)
        self.accounts_path = Path(accounts_file) if accounts_file else None
        self.env = (env_access, env_refresh) if env_access or env_refresh else None
        self.source: Source = "accounts" if self.accounts_path else "env" if self.env else "file"
        if self.accounts_path:
            origin = f"accounts:{os.path.abspath(self.accounts_path)}:{name}"
        elif self.env:
            origin = f"env:{env_refresh or env_access}"
        else:
            origin = f"file:{os.path.abspath(token_file)}"
        self.key = f"{self.source}-{hashlib.sha256(origin.encode()).hexdigest()[:32]}"
        self.share: TokenShare = share or FileState(state_dir)  # the zero-configuration share
        if self.source != "env":
            for leftover in remove_leftovers(self.accounts_path or self.token_path):
                log.info("removed %s, a temporary file ki2api left when it was stopped while writing", leftover)

    @property
    def where(self) -> str | None:
        """The file a person edits to log this account in again (None for env tokens)."""
        if self.accounts_path:
            return str(self.accounts_path)
        return None if self.env else str(self.token_path)

    def stamp(self) -> tuple[Any, ...]:
        """Identity of the files and shared copies behind the credential as they are now; a change means: load
        again (a Redis record is part of it: a token another replica shared is used at once)."""
        base = self.accounts_path or self.token_path
        return file_stamp(base), self.share.tokens_stamp(self.name, self.key)

    def load(self, publish: bool = False) -> Snapshot:
        """Read the credential as the files, env and shared copies hold it now; `publish` repairs a stale share.

        A token file that cannot be parsed gives the newest login kept in ki2api's state (StoreError if none)."""
        stamp = self.stamp()  # taken first, so a write racing this read shows up as a change next time
        try:
            raw, file_data, saved = self._base()
        except MissingCredential:
            raise
        except StoreError as exc:
            if self.source != "file":
                raise
            return self._load_kept(stamp, exc, publish)
        candidates = [_Candidate({k: raw[k] for k in _TOKEN_KEYS if isinstance(raw.get(k), str)},
                                 extend_lineage((), text_field(raw.get("refreshToken"))), saved, _login_of(raw))]
        candidates += [_record_candidate(r) for r in self.share.read_tokens(self.name, self.key)]
        longer = [c.lineage for c in candidates[1:] if c.tip is not None and c.tip == candidates[0].tip]
        if longer:  # the file holds the tip of a chain a record knows more of
            candidates[0] = replace(candidates[0], lineage=max(longer, key=len))
        best = newest(candidates)
        if best is not candidates[0]:
            raw = {**{k: v for k, v in raw.items() if k not in _TOKEN_KEYS[:3]}, **best.tokens}
        elif self.source == "file" and best.tip is not None:
            self._remember(best)
        if publish and best.tip is not None:
            self.share.publish_tokens(self.name, self.key, _record({**best.login, **best.tokens}, best.lineage,
                                                                  best.saved_at))
        client = None
        if str(raw.get("authMethod", "")).lower() == "idc":
            client = raw if text_field(raw.get("clientId")) and text_field(raw.get("clientSecret")) else \
                find_client(self.accounts_path or self.token_path, text_field(raw.get("clientIdHash")))
        return Snapshot(credential_from(raw, self.source, client), file_data, stamp, best.lineage, _login_of(raw))

    def file_state(self) -> tuple[str | None, str | None]:
        """The token file as it is now, the same for every worker: ("ok" | "missing" | "unreadable", why), or
        (None, None) when the credential does not come from a token file."""
        if self.source != "file":
            return None, None
        try:
            data = read_json(self.token_path)
        except StoreError as exc:
            return "unreadable", str(exc)
        return ("missing", None) if data is None else ("ok", None)

    def save(self, credential: Credential, previous: Snapshot) -> tuple[Snapshot, str]:
        """Persist a refreshed credential where every worker reads; return the new snapshot and where it went.

        Never over a token file that cannot be parsed now (the IDE may be halfway through writing a new login):
        the refreshed token then goes to ki2api's own state only, and the log says so."""
        lineage = extend_lineage(previous.lineage, credential.refresh_token)
        record = _record({**previous.login, **_tokens_of(credential)}, lineage)
        file_data, wrote = previous.file_data, ""
        unparsable = self.file_state()[1] if self.source == "file" else None
        if unparsable:
            file_data = None
        if self.source == "file" and file_data is not None and is_writable(self.token_path):
            merged = {**file_data, **_tokens_of(credential)}
            try:
                write_json_atomic(self.token_path, merged, like=self.token_path.stat())
                file_data, wrote = merged, str(self.token_path)
            except OSError as exc:
                log.warning("cannot write %s (%s); keeping the refreshed token in the state directory",
                            self.token_path, exc.strerror)
        shared = self.share.write_tokens(self.name, self.key, record, local=not wrote)
        if wrote:
            self._remember(_record_candidate(record))
        where = ", ".join(w for w in (wrote, shared) if w)
        if unparsable:
            log.warning("%s cannot be parsed (%s): ki2api does not write over it; the refreshed token of %s is "
                        "kept in ki2api's own state (%s) and used until the file holds a readable login",
                        self.token_path, unparsable, self.name, where)
        return Snapshot(credential, file_data, self.stamp(), lineage, previous.login), where

    def lock(self, timeout: float) -> ContextManager[None]:
        """Hold the refresh lock shared with every other process; TimeoutError past `timeout`.

        A token file's lock is `<token file>.lock` beside it, so that every ki2api sharing the file (say, one
        on the host and one in a container, each with its own state directory) queues on the same lock.
        """
        beside = self.token_path.with_name(f"{self.token_path.name}.lock") if self.source == "file" else None
        return self.share.refresh_lock(self.name, self.key, timeout, beside)

    def shared(self) -> dict[str, Any]:
        """This account's fields in the shared state (disabled, last_refresh, cooldown...), as any process left them."""
        return self.share.states().get(self.name, {})

    def dead_reason(self, credential: Credential, shared: Mapping[str, Any] | None = None) -> str | None:
        """Why this login's refresh token was found dead, by any process (the shared disabled flag), or None;
        `shared` is this account's fields if the caller has read them already."""
        flag = (self.shared() if shared is None else shared).get("disabled") or {}
        dead = flag.get("why") and flag.get("fingerprint") == fingerprint(credential.refresh_token)
        return str(flag["why"]) if dead else None

    def note_refresh(self, outcome: dict[str, Any]) -> None:
        """Tell every process how the last refresh call went: {at (epoch), ok, error}."""
        self.share.update(self.name, "last_refresh", outcome)

    def mark_dead(self, credential: Credential, why: str) -> None:
        """Tell every process that this login's refresh token is dead, before anyone else tries it."""
        self.share.update(self.name, "disabled", {"why": why, "at": time.time(),
                                                  "fingerprint": fingerprint(credential.refresh_token)})

    def _load_kept(self, stamp: tuple[Any, ...], problem: StoreError, publish: bool) -> Snapshot:
        """The newest login kept in ki2api's state while the token file cannot be parsed; `problem` if none."""
        kept = [_record_candidate(r) for r in self.share.read_tokens(self.name, self.key)]
        kept = [c for c in kept if c.tokens.get("accessToken") or c.tokens.get("refreshToken")]
        if not kept:
            raise problem
        best = newest(kept)
        if publish and best.tip is not None:
            self.share.publish_tokens(self.name, self.key, _record({**best.login, **best.tokens}, best.lineage,
                                                                  best.saved_at))
        raw = {**best.login, **best.tokens}
        client = find_client(self.token_path, text_field(raw.get("clientIdHash"))) \
            if str(raw.get("authMethod", "")).lower() == "idc" else None
        log.warning("account %s: %s; serving the login ki2api kept in its state until the file is readable again",
                    self.name, problem)
        return Snapshot(credential_from(raw, self.source, client), None, stamp, best.lineage, best.login)

    def _remember(self, candidate: _Candidate) -> None:
        """Keep the token file's login (tokens, lineage, non-secret fields) in the state directory."""
        record = _record({**candidate.login, **candidate.tokens}, candidate.lineage, candidate.saved_at)
        try:
            self.share.remember_tokens(self.key, record,
                                       lambda kept: newest([candidate, _record_candidate(kept)]) is candidate)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot keep a copy of the login of %s in the state directory: %s", self.name, exc)

    def _base(self) -> tuple[dict[str, Any], dict[str, Any] | None, float]:
        """The configured credential (raw fields), the token file's JSON, and when it was written."""
        if self.accounts_path:
            return self._entry(), None, _mtime(self.accounts_path)
        if self.env:
            file_data = self._optional_file()
            raw = {k: v for k, v in (file_data or {}).items() if k not in _TOKEN_KEYS[:3]}
            raw.update(accessToken=self.env[0], refreshToken=self.env[1])
            return raw, file_data, time.time()  # env tokens were given now: they beat an unrelated shared login
        file_data = read_json(self.token_path)
        if file_data is None:
            raise MissingCredential(f"no Kiro token file at {self.token_path}")
        return dict(file_data), file_data, _mtime(self.token_path)

    def _entry(self) -> dict[str, Any]:
        assert self.accounts_path is not None
        for entry in read_entries(self.accounts_path):
            if entry.get("name") == self.name:
                return dict(entry)
        raise StoreError(f"account {self.name!r} is no longer in {self.accounts_path}")

    def _optional_file(self) -> dict[str, Any] | None:
        try:
            return read_json(self.token_path)
        except StoreError as exc:
            log.warning("ignoring the token file for its non-token fields: %s", exc)
            return None


def _tokens_of(credential: Credential) -> dict[str, str]:
    tokens = {"accessToken": credential.access_token, "refreshToken": credential.refresh_token,
              "expiresAt": format_expiry(credential.expires_at) if credential.expires_at else None,
              "profileArn": credential.profile_arn}
    return {k: v for k, v in tokens.items() if v}


def _login_of(raw: Mapping[str, Any]) -> dict[str, str]:
    return {k: raw[k] for k in _LOGIN_KEYS if isinstance(raw.get(k), str) and raw[k]}


def _record(raw: Mapping[str, Any], lineage: tuple[str, ...], saved_at: float | None = None) -> dict[str, Any]:
    tokens = {k: raw[k] for k in _TOKEN_KEYS + _LOGIN_KEYS if isinstance(raw.get(k), str) and raw[k]}
    saved = datetime.fromtimestamp(saved_at, timezone.utc) if saved_at else datetime.now(timezone.utc)
    return {**tokens, "savedAt": format_expiry(saved), "lineage": list(lineage)}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
