"""Stable conversation ids: every turn of one chat carries the same conversationId, as Kiro's own clients send it.

The captured Kiro-CLI traffic keeps one conversationId for a whole conversation (and the IDE keeps one
agentContinuationId with it); a new random id per request, as ki2api sent before, is something no real client
does. A gateway is stateless between requests, so the id is derived from what every request of one
conversation repeats:

    key = sha256(sha256(client API key), system text, first user turn (its text, images, tool results))
    conversationId      = uuid4-shaped( sha256("conversationId:"      + key + ":" + account machine id) )
    agentContinuationId = uuid4-shaped( sha256("agentContinuationId:" + key + ":" + account machine id) )

The follow-up of a turn, and each step of a tool loop, resends the same system text and first user message, so
it gets the same ids; another chat (another first message or system prompt, or another API key) gets others.
The account's machine id is mixed in because Kiro sees each account as its own client: a request that fails
over to another account starts that account's own conversation, and no two accounts (or installations, whose
machine ids are random) ever send the same id. Neither the API key nor any text can be read back from an id.
Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from .history import Conversation

VERSION = "ki2api-conversation-1"  # changing the derivation changes every id: bump this with it


def conversation_key(conversation: Conversation, api_key: str) -> str:
    """The hex digest naming one conversation of one client: its key, system text and first user turn."""
    first = next((turn for turn in conversation.turns if turn.role == "user"), None)
    lead = {"system": conversation.system,
            "text": first.text if first else "",
            "images": first.images if first else [],
            "results": first.tool_results if first else []}
    client = hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()
    canonical = json.dumps([VERSION, client, lead], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _uuid(label: str, key: str, machine_id: str) -> str:
    digest = hashlib.sha256(f"{label}:{key}:{machine_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def conversation_ids(key: str, machine_id: str) -> tuple[str, str]:
    """(conversationId, agentContinuationId) of conversation `key` on the account with `machine_id`."""
    return _uuid("conversationId", key, machine_id), _uuid("agentContinuationId", key, machine_id)


def with_conversation(payload: dict[str, Any], key: str, machine_id: str) -> dict[str, Any]:
    """A shallow copy of a generateAssistantResponse body carrying the conversation's ids for this account."""
    conversation_id, continuation_id = conversation_ids(key, machine_id)
    state = {**payload["conversationState"], "conversationId": conversation_id,
             "agentContinuationId": continuation_id}
    return {**payload, "conversationState": state}
