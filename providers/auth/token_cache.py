"""Credentials and tokens shared by every line of a worker, (re)loaded by one coroutine at a time.

Used by the auth schemes that do I/O (:mod:`providers.auth.sigv4`, :mod:`providers.auth.google_oauth`,
:mod:`providers.auth.watsonx_iam`): concurrent lines that find no fresh value wait for the one
load in flight instead of each starting their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

T = TypeVar("T")


class Cached(Generic[T]):
    """Values by key; ``get`` loads (or reloads) a missing or stale one under a per-key lock."""

    def __init__(self) -> None:
        self._values: dict[Hashable, T] = {}
        # an asyncio.Lock belongs to the event loop it first waits on, and an adapter (with its
        # auth) is module-level data that outlives any one loop: one set of locks per loop
        self._locks: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Lock]]
        self._locks = WeakKeyDictionary()

    def _lock(self, key: Hashable) -> asyncio.Lock:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(key, asyncio.Lock())

    async def get(
        self,
        key: Hashable,
        load: Callable[[T | None], Awaitable[T]],
        fresh: Callable[[T], bool] = lambda _value: True,
    ) -> T:
        """The cached value if ``fresh``, else ``await load(previous or None)`` (stored; an error is not)."""
        if key in self._values and fresh(value := self._values[key]):
            return value
        async with self._lock(key):
            previous = self._values.get(key)
            if key in self._values and fresh(value := self._values[key]):
                return value
            value = await load(previous)
            self._values[key] = value
            return value
