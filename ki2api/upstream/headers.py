"""The Kiro IDE's request headers, sent with every call to Kiro's API (chat and usage limits alike)."""
from __future__ import annotations

import hashlib
import uuid
from typing import Protocol

KIRO_VERSION = "0.11.63"
SDK = "aws-sdk-js/1.0.34"


class Login(Protocol):
    """What the headers need of a credential (accounts.credential.Credential has it)."""

    @property
    def access_token(self) -> str: ...

    @property
    def profile_arn(self) -> str | None: ...

    @property
    def source(self) -> str: ...


def kiro_headers(credential: Login) -> dict[str, str]:
    """The Kiro IDE's request headers for one credential."""
    machine = hashlib.sha256(f"ki2api:{credential.profile_arn or credential.source}".encode()).hexdigest()
    agent = f"KiroIDE-{KIRO_VERSION}-{machine}"
    return {
        "Authorization": f"Bearer {credential.access_token}",
        "Content-Type": "application/json",
        "Accept": "application/vnd.amazon.eventstream, application/json",
        "x-amzn-codewhisperer-optout": "true",
        "x-amzn-kiro-agent-mode": "vibe",
        "x-amz-user-agent": f"{SDK} {agent}",
        "User-Agent": f"{SDK} ua/2.1 os/linux lang/js md/nodejs#22.22.0 api/codewhispererstreaming#1.0.34 m/E {agent}",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": "attempt=1; max=1",
    }
