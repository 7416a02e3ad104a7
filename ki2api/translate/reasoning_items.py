"""Responses API reasoning and compaction items: what ki2api puts in `encrypted_content`, and reading it back.

OpenAI's `encrypted_content` is opaque to clients; they hand it back unchanged in the next request's input
(Codex always does, with `store: false`). ki2api puts there its own envelope, `ki2api.r1.` + base64url of
`{"text": ..., "signature": ...}`: the whole reasoning text and, once Kiro's native reasoning is used, the
signature that must go back with it. It is not encrypted: it holds what the client was already shown.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import InvalidRequest

PREFIX = "ki2api.r1."


def encode_reasoning(text: str, signature: str | None = None) -> str:
    """The `encrypted_content` for reasoning `text` (and its signature, when the upstream gave one)."""
    blob: dict[str, Any] = {"text": text}
    if signature:
        blob["signature"] = signature
    raw = json.dumps(blob, ensure_ascii=False, separators=(",", ":")).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def read_envelope(content: Any) -> dict[str, Any] | None:
    """The `{"text", "signature"?}` in a ki2api envelope; None for anything else (another service's content)."""
    if not isinstance(content, str) or not content.startswith(PREFIX):
        return None
    try:
        blob = json.loads(base64.urlsafe_b64decode(content[len(PREFIX):].encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    return blob if isinstance(blob, dict) and isinstance(blob.get("text"), str) else None


def decode_reasoning(item: dict[str, Any], where: str) -> str:
    """The reasoning text of a reasoning or compaction item given back: ki2api's envelope if present, else the
    summary (or content) texts."""
    blob = read_envelope(item.get("encrypted_content"))
    if blob is not None:
        return blob["text"]
    texts = []
    for key in ("summary", "content"):
        parts = item.get(key) or []
        if not isinstance(parts, list):
            raise InvalidRequest(f"{where}.{key} must be a list", param=f"{where}.{key}")
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        if texts:
            break
    return "\n".join(texts)


def reasoning_signature(item: dict[str, Any]) -> str | None:
    """The signature a reasoning item carries in ki2api's envelope, if any (for native reasoning replay)."""
    blob = read_envelope(item.get("encrypted_content"))
    signature = blob.get("signature") if blob else None
    return signature if isinstance(signature, str) else None
