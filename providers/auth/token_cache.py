"""Credentials and tokens shared by every line a dispatcher sends, (re)loaded by one coroutine at a time.

The dispatcher owns one :class:`TokenCache` (built with it at worker start-up) and hands it to
the auth schemes that do I/O (:mod:`providers.auth.sigv4`, :mod:`providers.auth.google_oauth`,
:mod:`providers.auth.watsonx_iam`) with every request; the schemes themselves hold no state.
Concurrent lines that find no fresh value wait for the one load in flight instead of each
starting their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

__all__ = ["TokenCache"]

T = TypeVar("T")


def _always(_value: Any) -> bool:
    return True


class TokenCache:
    """Values by key (a scheme puts itself in its keys, so schemes never share an entry);
    ``get`` loads (or reloads) a missing or stale one under a per-key lock."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        # a dispatcher, and so its cache, lives on the one event loop of its worker
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def get(
        self,
        key: Hashable,
        load: Callable[[T | None], Awaitable[T]],
        fresh: Callable[[T], bool] = _always,
    ) -> T:
        """The cached value if ``fresh``, else ``await load(previous or None)`` (stored; an error is not)."""
        if key in self._values and fresh(value := cast(T, self._values[key])):
            return value
        async with self._locks.setdefault(key, asyncio.Lock()):
            previous = cast(T | None, self._values.get(key))
            if key in self._values and fresh(value := cast(T, self._values[key])):
                return value
            value = await load(previous)
            self._values[key] = value
            return value
