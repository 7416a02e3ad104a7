"""Tool calls cut off by the output limit: never handed to the client, and the model told on its next turn.

When Kiro's answer ends inside a tool call's input (the answer hit its output limit, the argument JSON does
not parse), the client must not receive the broken call: Claude Code would fail it ("Write failed") and the
model would retry the same oversized call. The answer pipeline (answer.py) holds each call back until it is
complete, drops a cut one, ends the answer as `max_tokens` / `length`, and adds NOTE as the answer's last text.
That text comes back in the history of the next request (the assistant message as the client kept it); when
the same next request carries tool results (the complete calls of that answer, run by the client), the note is
also appended to each of them (`annotate`), so the model reads it right where it looks for its calls' outcome.
Pure: no I/O.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

MARK = "[ki2api: tool call cut off]"
NOTE = (MARK + " The call to {names} was cut off at the output limit before its input was complete, so it was "
        "not run. Split it into smaller pieces: for a large file, write the first part, then add the rest "
        "with further calls (edits or appends), each well under the output limit.")


def complete(raw: str) -> bool:
    """Whether a call's assembled argument text is whole: empty (no arguments) or a JSON object."""
    if not raw.strip():
        return True
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def note(names: Iterable[str]) -> str:
    """The text telling the model which calls were cut and what to do instead."""
    unique = list(dict.fromkeys(names))
    return NOTE.format(names=", ".join(f"`{name}`" for name in unique))


def _note_in(text: str) -> str:
    at = text.find(MARK)
    return text[at:].strip() if at >= 0 else ""


def _with_note(result: dict[str, Any], said: str) -> dict[str, Any]:
    content = [dict(block) for block in result.get("content", [])]
    for block in content:
        if isinstance(block.get("text"), str):
            if MARK not in block["text"]:
                block["text"] = f"{block['text']}\n\n{said}"
            break
    return {**result, "content": content}


def annotate(turns: list[Any]) -> None:
    """history.Turn list (history.py calls this, so no import back): append the cut-call note of an assistant turn to the tool results of the user turn after it (copies)."""
    for before, turn in zip(turns, turns[1:]):
        said = _note_in(before.text) if before.role == "assistant" else ""
        if said and turn.role == "user":
            turn.tool_results = [_with_note(result, said) for result in turn.tool_results]
