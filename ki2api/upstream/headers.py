"""Every header set ki2api sends to Kiro, shaped as the Kiro IDE sends them: chat, usage limits, social and IdC
refresh. The one place a Kiro version, an SDK version, an OS token or a machine id is written into a header.

Where each value comes from is in docs/protocol.md ("How ki2api presents itself"). The Kiro version is the
setting KIRO_CLIENT_VERSION; the OS token is this machine's (`os/linux#6.1.0-18-amd64`, as Node reports it);
the machine id is the account's own (accounts/identity.py).
"""
from __future__ import annotations

import platform
import uuid
from functools import lru_cache
from typing import Protocol

CHAT_SDK = "1.0.34"  # @amzn/codewhisperer-streaming in the IDE's published request
USAGE_SDK = "1.0.0"  # the IDE's codewhisperer runtime client (getUsageLimits, ListAvailableModels)
OIDC_SDK = "3.980.0"  # @aws-sdk/client-sso-oidc of the IDE
NODE = "22.22.0"  # the IDE's Electron Node, as in its published request
CHAT_MAX_ATTEMPTS = 3
API_KEY_PREFIX = "ksk_"  # a Kiro API key is the bearer itself; usage calls say so with `tokentype: API_KEY`
_NODE_PLATFORMS = {"linux": "linux", "darwin": "darwin", "windows": "win32"}


class Login(Protocol):
    """What the headers need of a credential (accounts.credential.Credential has it)."""

    @property
    def access_token(self) -> str: ...


@lru_cache(maxsize=1)
def os_token() -> str:
    """This machine's OS as Node's user agent writes it: `os/<process.platform>#<os.release()>`."""
    system = platform.system().lower()
    name = _NODE_PLATFORMS.get(system, system or "other")
    release = platform.release().replace(" ", "_")
    return f"os/{name}#{release}" if release else f"os/{name}"


def ide_agent(version: str, machine_id: str) -> str:
    """`KiroIDE-<version>-<machine id>`: how the IDE names itself at the end of each user agent."""
    return f"KiroIDE-{version}-{machine_id}"


def chat_headers(credential: Login, version: str, machine_id: str, attempt: int = 1) -> dict[str, str]:
    """generateAssistantResponse: the IDE's streaming client; `attempt` counts this call's tries (1 first)."""
    agent = ide_agent(version, machine_id)
    return {
        "Authorization": f"Bearer {credential.access_token}",
        "Content-Type": "application/json",
        "Accept": "application/vnd.amazon.eventstream, application/json",
        "x-amzn-codewhisperer-optout": "true",
        "x-amzn-kiro-agent-mode": "vibe",
        "x-amz-user-agent": f"aws-sdk-js/{CHAT_SDK} {agent}",
        "User-Agent": f"aws-sdk-js/{CHAT_SDK} ua/2.1 {os_token()} lang/js md/nodejs#{NODE} "
                      f"api/codewhispererstreaming#{CHAT_SDK} m/E {agent}",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": f"attempt={attempt}; max={CHAT_MAX_ATTEMPTS}",
    }


def mcp_headers(credential: Login, version: str, machine_id: str, profile_arn: str | None) -> dict[str, str]:
    """POST /mcp (Kiro's web search): the streaming client's agent, plus the account's profile ARN as a header."""
    agent = ide_agent(version, machine_id)
    headers = {
        "Authorization": f"Bearer {credential.access_token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-amz-user-agent": f"aws-sdk-js/{CHAT_SDK} {agent}",
        "User-Agent": f"aws-sdk-js/{CHAT_SDK} ua/2.1 {os_token()} lang/js md/nodejs#{NODE} "
                      f"api/codewhispererstreaming#{CHAT_SDK} m/E {agent}",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": f"attempt=1; max={CHAT_MAX_ATTEMPTS}",
    }
    if profile_arn:
        headers["x-amzn-kiro-profile-arn"] = profile_arn
    return headers


def usage_headers(credential: Login, version: str, machine_id: str) -> dict[str, str]:
    """getUsageLimits: the IDE's runtime client, a GET without a body (so no content type)."""
    agent = ide_agent(version, machine_id)
    return {
        "Authorization": f"Bearer {credential.access_token}",
        "Accept": "application/json",
        "x-amz-user-agent": f"aws-sdk-js/{USAGE_SDK} {agent}",
        "User-Agent": f"aws-sdk-js/{USAGE_SDK} ua/2.1 {os_token()} lang/js md/nodejs#{NODE} "
                      f"api/codewhispererruntime#1.0.0 m/N,E {agent}",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": "attempt=1; max=1",
        **({"tokentype": "API_KEY"} if credential.access_token.startswith(API_KEY_PREFIX) else {}),
    }


def social_refresh_headers(version: str, machine_id: str) -> dict[str, str]:
    """POST refreshToken at Kiro's auth service: the IDE's plain HTTP client, its user agent the IDE's name."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/plain, */*",
        "User-Agent": ide_agent(version, machine_id),
    }


def idc_refresh_headers() -> dict[str, str]:
    """POST /token at AWS SSO OIDC: the IDE's sso-oidc SDK client, which names KiroIDE without version or id."""
    return {
        "Content-Type": "application/json",
        "x-amz-user-agent": f"aws-sdk-js/{OIDC_SDK} KiroIDE",
        "User-Agent": f"aws-sdk-js/{OIDC_SDK} ua/2.1 {os_token()} lang/js md/nodejs#{NODE} "
                      f"api/sso-oidc#{OIDC_SDK} m/E KiroIDE",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": "attempt=1; max=4",
    }
