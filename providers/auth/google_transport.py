"""google-auth's transport interface over httpx, so a token refresh needs neither requests nor urllib3.

Imported only when google-auth is installed (``pip install 'rerank-runner[vertex]'``).  Refreshes
run in a worker thread, so this is httpx's synchronous API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from google.auth import exceptions, transport

__all__ = ["TIMEOUT_SECONDS", "HttpxRequest", "HttpxResponse"]

TIMEOUT_SECONDS = 30.0


class HttpxResponse(transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(transport.Request):
    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> HttpxResponse:
        try:
            response = httpx.request(
                method, url, content=body, headers=headers, timeout=timeout or TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(exc) from exc  # type: ignore[no-untyped-call]
        return HttpxResponse(response)
