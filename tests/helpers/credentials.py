"""The test credentials: the client key, the fake Kiro's tokens, and IDE-style token files holding them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

ACCESS = "aoaAAAAAtest-access-token-0001"
REFRESH = "aorAAAAAtest-refresh-token-0001"
KEY = "test-key-123"


def iso(dt: datetime) -> str:
    """expiresAt as the Kiro IDE writes it."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def write_token_file(path: Path, access: str = ACCESS, refresh: str = REFRESH, expires_in: float = 3600) -> Path:
    """A social-login token file like the IDE's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "accessToken": access, "refreshToken": refresh,
        "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK",
        "expiresAt": iso(datetime.now(timezone.utc) + timedelta(seconds=expires_in)),
        "authMethod": "social", "provider": "Github"}, indent=2))
    return path
