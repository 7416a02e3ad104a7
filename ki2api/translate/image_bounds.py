"""How many images a request sends Kiro: at most MAX_IMAGES, and only those of the last IMAGE_HISTORY_TURNS user
turns; older ones become a short text placeholder, so a long chat with screenshots stops growing.

The current message is the client's own choice: more images than the limit there is a 400 naming it (dropping
any of them would answer a question the client did not ask). History is ki2api's to shorten: the newest
images are kept, newest first, while they are recent enough and the count allows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import InvalidRequest

log = logging.getLogger(__name__)

# The defaults of MAX_IMAGES and IMAGE_HISTORY_TURNS (ki2api/settings.py; a test checks they agree).
MAX_IMAGES = 20
HISTORY_TURNS = 5


@dataclass(frozen=True)
class ImageBounds:
    """`max_images` per request, and the number of latest user turns (the current one included) whose images
    are sent; images of older turns are replaced by a placeholder."""

    max_images: int = MAX_IMAGES
    history_turns: int = HISTORY_TURNS


class Turn(Protocol):
    """What is read and changed of history.Turn (history.py imports this module, so not the other way)."""

    role: str
    text: str
    images: list[dict[str, Any]]


def placeholder(count: int) -> str:
    """The text that stands where `count` earlier images were."""
    return f"[{count} earlier image{'s' if count > 1 else ''} omitted]"


def bound_images(turns: list[Turn], bounds: ImageBounds) -> int:
    """Apply the bounds to normalised turns in place (the last is the current message); return how many images
    became placeholders. InvalidRequest if the current message alone has more than `max_images`."""
    current = len(turns[-1].images) if turns else 0
    if current > bounds.max_images:
        raise InvalidRequest(f"the last user message carries {current} images; this server sends at most "
                             f"{bounds.max_images} per request (MAX_IMAGES)", param="messages",
                             code="too_many_images")
    budget, omitted = bounds.max_images, 0
    users = [turn for turn in turns if turn.role == "user"]
    for age, turn in enumerate(reversed(users)):  # newest first: age 0 is the current message
        if not turn.images:
            continue
        keep = min(len(turn.images), budget) if age < bounds.history_turns else 0
        dropped = len(turn.images) - keep
        if dropped:
            turn.images = turn.images[dropped:]  # within a turn, the later images are the newer ones
            turn.text = "\n".join(t for t in (turn.text, placeholder(dropped)) if t)
            omitted += dropped
        budget -= keep
    if omitted:
        log.info("sent Kiro %d images; %d earlier ones became placeholders (MAX_IMAGES %d, IMAGE_HISTORY_TURNS %d)",
                 bounds.max_images - budget, omitted, bounds.max_images, bounds.history_turns)
    return omitted
