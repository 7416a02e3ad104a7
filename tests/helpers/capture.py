"""The decoded image-tool-flow capture (one `[eventType] {json}` line per frame) as fake-Kiro events."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers.fixtures import CAPTURE

IMAGE_TOOL_FLOW_06 = CAPTURE / "image-tool-flow" / "06-turn-claude-haiku-toolUse.json"


def decoded_events(path: Path = IMAGE_TOOL_FLOW_06) -> list[dict[str, Any]]:
    """The frames after initial-response, as fake-Kiro `events` entries ({"event", "payload"})."""
    lines = json.loads(path.read_text(encoding="utf-8"))["resBodyEventstream"].splitlines()
    events = []
    for line in lines:
        kind, _, payload = line.partition("] ")
        if kind.lstrip("[") != "initial-response":
            events.append({"event": kind.lstrip("["), "payload": json.loads(payload)})
    return events
