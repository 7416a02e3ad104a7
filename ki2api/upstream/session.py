"""The requests Session ki2api's upstream calls share: its environment read once per origin, and a chat call
prepared in one step."""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity


class UpstreamSession(requests.Session):
    """A requests Session that looks up proxies and the CA bundle in the environment once per origin.

    requests scans os.environ (HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE ...) on every call, a cost paid
    per request (docs/performance.md). The environment of a running server does not change, so the first
    answer for each scheme and host is kept; calls that pass their own proxies or verify setting go the usual way.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], tuple[dict[str, str], Any]] = {}
        self._urls: dict[str, str] = {}
        # The Date header of Kiro's latest answer and when it came: /health compares the clocks (diagnostics).
        self.last_answer: tuple[str | None, float] | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """requests' send, noting the answer's Date header (kept as text: parsed only when /health asks)."""
        response = super().send(request, **kwargs)
        self.last_answer = (response.headers.get("Date"), time.time())
        return response

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

    def post_stream(self, url: str, data: bytes, headers: dict[str, str], timeout: Any) -> requests.Response:
        """POST `data` and return the response unread (stream=True): the request `self.post` would send, prepared
        directly instead of through requests' per-call merging of session settings (docs/performance.md). This
        session is ki2api's own and holds no auth, params or hooks; its cookies are sent as usual. One
        difference on purpose: ~/.netrc is not read, where requests' way would replace the account's bearer
        token with a netrc entry's password for Kiro's host.
        """
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self._urls.get(url) or self._prepared_url(url)
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers)
        for header in merged.items():
            check_header_validity(header)  # a token with a line break raises InvalidHeader, as in requests' way
        merged["Content-Length"] = str(len(data))
        prepared.headers = merged
        prepared.body = data
        if self.cookies:
            prepared.prepare_cookies(self.cookies.copy())
        settings = self.merge_environment_settings(prepared.url, {}, True, None, None)
        return self.send(prepared, timeout=timeout, allow_redirects=True, **settings)

    def _prepared_url(self, url: str) -> str:
        """The URL as requests normalises it (scheme, host, quoting), worked out once per URL."""
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        self._urls[url] = prepared.url
        return prepared.url
