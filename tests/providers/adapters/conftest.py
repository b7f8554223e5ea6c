"""Fixtures for the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for talking to a local server directly (no proxies, short timeout)."""
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http
