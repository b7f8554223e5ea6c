"""A fake millisecond clock for ``RedisGate(now_ms=..., sleep=...)``: a wait moves it by
exactly that long and returns at once, so admission times in tests are exact."""

from __future__ import annotations

import asyncio

START_MS = 1_700_000_000_000


class Clock:
    """Milliseconds since the epoch, fake; ``sleep`` advances it (and yields, so other tasks run)."""

    def __init__(self, start: int = START_MS) -> None:
        self.ms = start
        self.start = start
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.ms

    @property
    def elapsed(self) -> int:
        return self.ms - self.start

    def advance(self, ms: int) -> None:
        self.ms += ms

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.ms += round(seconds * 1000)
        await asyncio.sleep(0)
