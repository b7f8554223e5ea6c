"""Fixtures for the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from providers.transport import HTTP_TRANSPORTS, HttpTransport, http_client


@pytest.fixture(params=HTTP_TRANSPORTS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for talking to a local server directly (no proxies, short timeout), on
    each transport a worker can run (``RR_HTTP_TRANSPORT``)."""
    kind: HttpTransport = request.param
    async with http_client(kind, 5, 8, trust_env=False) as http:
        yield http
