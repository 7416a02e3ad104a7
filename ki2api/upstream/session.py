"""The requests Session ki2api's upstream calls share, reading its environment once per origin."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting


class UpstreamSession(requests.Session):
    """A requests Session that looks up proxies and the CA bundle in the environment once per origin.

    requests scans os.environ (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE ...) on every call: in the
    benchmarks that was 7% of a worker's CPU per non-streamed request. The environment of a running
    server does not change, so the first answer for each scheme and host is kept; calls that pass their
    own proxies or verify setting go the usual way.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], tuple[dict[str, str], Any]] = {}

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        """requests' merge, with the environment's part remembered per origin."""
        if not self.trust_env or proxies or verify not in (None, True):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        origin = tuple(urlsplit(url)[:2])
        found = self._environment.get(origin)
        if found is None:
            merged = super().merge_environment_settings(url, {}, None, verify, None)
            found = self._environment[origin] = (merged["proxies"], merged["verify"])
        return {"proxies": dict(found[0]), "stream": merge_setting(stream, self.stream), "verify": found[1],
                "cert": merge_setting(cert, self.cert)}
