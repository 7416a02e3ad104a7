"""Where the repository's own copies of the captured Kiro traffic and OpenAI's schema live."""
from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "kiro-capture"
OPENAI_SCHEMAS = FIXTURES / "openai-openapi" / "schemas.json"


def capture_stream(name: str) -> bytes:
    """The raw event-stream bytes of capture row `name` (e.g. "06")."""
    return (CAPTURE / f"{name}.response.eventstream").read_bytes()
