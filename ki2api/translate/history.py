"""API-neutral conversation rules: turn a list of turns into Kiro's conversationState.

Both the OpenAI and the Anthropic translators parse into `Conversation` and call
`build_payload`, so the upstream's rules (alternating history ending with an
assistant turn, the last user turn as currentMessage, paired tool calls, declared
tools) are enforced in one place.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from .cut_calls import annotate
from .image_bounds import ImageBounds, bound_images
from .thinking import reserialise, with_thinking
from .tools import ToolNames

SYSTEM_ACK = "I will follow these instructions."
CACHE_POINT = {"type": "default"}  # Kiro's one CachePointType (protocol notes, "Prompt caching")
CONTINUE = "Continue"
TOOL_ONLY_TEXT = " "


@dataclass
class Turn:
    """One message in neutral form; images, tool uses and results already in Kiro's shapes.

    Tool uses carry upstream tool names (`ToolNames.upstream`); `reasoning` is an assistant
    turn's earlier thinking, sent back as `<thinking>...</thinking>` before its text when the
    request turns legacy thinking on, and dropped otherwise. For a model with native reasoning,
    `signed_reasoning` (text, signature: the first signed thinking of the turn) or else
    `redacted_reasoning` goes back as the turn's `reasoningContent`; unsigned thinking does not,
    as Kiro checks signatures. `cache_point`: a client's cache breakpoint is in this turn, so the Kiro message
    holding it gets a cache point (translate/cache_points.py).
    """

    role: str
    text: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    tool_uses: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str = ""
    signed_reasoning: tuple[str, str] | None = None
    redacted_reasoning: str = ""
    cache_point: bool = False


@dataclass
class Conversation:
    """A whole request: system text, turns in order, Kiro tool specifications and the name map.

    `thinking_budget` set turns the legacy thinking mode on (prefix before the system text).
    `names` is the map the tool specs and tool uses were named with; the answer maps back with it.
    `instruction` is appended to the current user message (how tool_choice is expressed upstream).
    `native_reasoning`: the model takes Kiro's native reasoning (translate/reasoning.py), so past thinking
    goes back as `reasoningContent`; `request_fields` is the request's `additionalModelRequestFields`.
    `system_cache_point` / `tools_cache_point`: the client put a cache breakpoint on its system prompt / tools;
    both go on the first Kiro message (the one carrying the system prompt, if any): the first place a cache
    point can stand, and every prefix holds the tools.
    """

    system: str
    turns: list[Turn]
    tools: list[dict[str, Any]] = field(default_factory=list)
    names: ToolNames = field(default_factory=ToolNames)
    thinking_budget: int | None = None
    instruction: str = ""
    native_reasoning: bool = False
    request_fields: dict[str, Any] | None = None
    system_cache_point: bool = False
    tools_cache_point: bool = False


def _merge(turns: list[Turn]) -> list[Turn]:
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            last = merged[-1]
            last.text = "\n".join(t for t in (last.text, turn.text) if t)
            last.images += turn.images
            last.tool_uses += turn.tool_uses
            last.tool_results += turn.tool_results
            last.reasoning = "\n".join(t for t in (last.reasoning, turn.reasoning) if t)
            last.signed_reasoning = last.signed_reasoning or turn.signed_reasoning
            last.redacted_reasoning = last.redacted_reasoning or turn.redacted_reasoning
            last.cache_point = last.cache_point or turn.cache_point  # the merged message holds the block
        else:
            merged.append(Turn(turn.role, turn.text, list(turn.images), list(turn.tool_uses),
                               list(turn.tool_results), turn.reasoning, turn.signed_reasoning,
                               turn.redacted_reasoning, turn.cache_point))
    return merged


def _pair_tools(turns: list[Turn]) -> None:
    """Keep only tool uses answered in the next user turn, and results whose use precedes them."""
    for i, turn in enumerate(turns):
        if turn.role != "user":
            continue
        offered = {u["toolUseId"] for u in turns[i - 1].tool_uses} if i > 0 else set()
        seen: set[str] = set()
        kept = []
        for result in turn.tool_results:
            rid = result["toolUseId"]
            if rid in offered and rid not in seen:
                seen.add(rid)
                kept.append(result)
        turn.tool_results = kept
        if i > 0:
            first = {}
            for use in turns[i - 1].tool_uses:
                if use["toolUseId"] in seen:
                    first.setdefault(use["toolUseId"], use)
            turns[i - 1].tool_uses = list(first.values())
    if turns and turns[-1].role == "assistant":
        turns[-1].tool_uses = []


def normalise_turns(turns: list[Turn]) -> list[Turn]:
    """Merge same-role runs, start and end with a user turn, and pair tool calls with results."""
    merged = _merge([t for t in turns if t.role in ("user", "assistant")])
    if not merged or merged[0].role == "assistant":
        merged.insert(0, Turn("user", CONTINUE))
    if merged[-1].role == "assistant":
        merged.append(Turn("user", CONTINUE))
    _pair_tools(merged)
    annotate(merged)
    return merged


def _declare_used_tools(turns: list[Turn], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool named in history must be declared; add minimal specs for the missing ones."""
    declared = {t["toolSpecification"]["name"].lower() for t in tools}
    extra = []
    for turn in turns:
        for use in turn.tool_uses:
            if use["name"].lower() not in declared:
                declared.add(use["name"].lower())
                extra.append({"toolSpecification": {
                    "name": use["name"], "description": f"Tool {use['name']} (used earlier in this conversation).",
                    "inputSchema": {"json": {"type": "object", "properties": {}}}}})
    return tools + extra


def _user_message(turn: Turn, model_id: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    text = turn.text
    if not text and not turn.tool_results and not turn.images:
        text = CONTINUE
    message: dict[str, Any] = {"content": text, "modelId": model_id, "origin": "AI_EDITOR"}
    if turn.images:
        message["images"] = turn.images
    context: dict[str, Any] = {}
    if tools:
        context["tools"] = tools
    if turn.tool_results:
        context["toolResults"] = turn.tool_results
    if context:
        message["userInputMessageContext"] = context
    if turn.cache_point:
        message["cachePoint"] = dict(CACHE_POINT)
    return {"userInputMessage": message}


def _reasoning_content(turn: Turn) -> dict[str, Any] | None:
    """A turn's signed (or redacted) thinking in Kiro's history shape, None when it has none."""
    if turn.signed_reasoning is not None:
        text, signature = turn.signed_reasoning
        return {"reasoningText": {"text": text, "signature": signature}}
    return {"redactedContent": turn.redacted_reasoning} if turn.redacted_reasoning else None


def _assistant_message(turn: Turn, thinking: bool, native: bool) -> dict[str, Any]:
    # Past thinking is replayed only when this request asks for thinking: otherwise the answer's text is not
    # split, and a model imitating the replayed <thinking> tags would put its thinking into the text.
    text = reserialise(turn.reasoning, turn.text) if thinking and not native else turn.text
    message: dict[str, Any] = {"content": text or (TOOL_ONLY_TEXT if turn.tool_uses else CONTINUE)}
    if turn.tool_uses:
        message["toolUses"] = turn.tool_uses
    reasoning = _reasoning_content(turn) if native else None
    if reasoning is not None:
        message["reasoningContent"] = reasoning
    if turn.cache_point:
        message["cachePoint"] = dict(CACHE_POINT)
    return {"assistantResponseMessage": message}


def build_payload(conversation: Conversation, model_id: str, images: ImageBounds = ImageBounds()
                  ) -> dict[str, Any]:
    """Return the generateAssistantResponse body (without profileArn, which the client adds), its images
    within `images` (image_bounds.py)."""
    turns = normalise_turns(conversation.turns)
    bound_images(turns, images)
    system = conversation.system
    thinking = conversation.thinking_budget is not None
    if conversation.thinking_budget is not None:
        system = with_thinking(system, conversation.thinking_budget)
    if conversation.instruction:
        turns[-1].text = "\n\n".join(t for t in (turns[-1].text, conversation.instruction) if t)
    if system:
        turns = [Turn("user", system), Turn("assistant", SYSTEM_ACK)] + turns
    if conversation.system_cache_point or conversation.tools_cache_point:
        turns[0].cache_point = True
    tools = _declare_used_tools(turns, conversation.tools)
    history = [
        _user_message(t, model_id, None) if t.role == "user"
        else _assistant_message(t, thinking, conversation.native_reasoning)
        for t in turns[:-1]
    ]
    payload: dict[str, Any] = {"conversationState": {
        "conversationId": str(uuid.uuid4()),
        "agentContinuationId": str(uuid.uuid4()),
        "agentTaskType": "vibe",
        "chatTriggerType": "MANUAL",
        "currentMessage": _user_message(turns[-1], model_id, tools),
        "history": history,
    }}
    if conversation.request_fields:
        payload["additionalModelRequestFields"] = conversation.request_fields
    return payload
