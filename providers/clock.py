"""Redis's clock, carried by the worker between readings.

The limiter must run on one clock for every worker, and the workers' own clocks may be far
off.  Reading Redis's ``TIME`` inside each acquire costs a command per line; instead a worker
reads ``TIME`` (a few times in a row, the quickest answer kept), remembers the offset of its
own monotonic clock from it, and derives Redis's time from that offset until the next reading
(every ``refresh`` seconds).

``TIME`` is answered somewhere between sending and hearing back, but not in the middle: the
request leaves at once, while a busy worker's event loop may take many milliseconds to get to
the reply.  So a reading's offset is taken at its sending (Redis's time minus the local time
just before the request: late by Redis's own delay in answering) and its uncertainty is the
whole round trip.  The least uncertain reading is kept, its uncertainty growing with its age
(the clocks drift apart, NTP slewing Redis's), unless a new reading contradicts it beyond both
uncertainties (Redis's clock stepped, or another Redis answers): then the new one is taken at
once.  Two workers' derived clocks thus differ by about Redis's delay in answering, not by
their event loops' lag.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["DRIFT", "SAMPLES", "Reading", "RedisClock", "monotonic_ms"]

DRIFT = 0.0005
"""How fast a kept reading grows uncertain: 0.5 ms a second (NTP slews a clock by at most that)."""
SAMPLES = 3
"""``TIME`` calls in a row per reading; the one with the shortest round trip is kept (on a
loaded machine a round trip now and then takes tens of milliseconds)."""


def monotonic_ms() -> float:
    return time.monotonic() * 1000


@dataclass(frozen=True, slots=True)
class Reading:
    offset: float
    """Redis's clock minus the local one, milliseconds."""
    uncertainty: float
    """The round trip of the reading, milliseconds (Redis's time is later than the offset
    says by at most this)."""
    at: float
    """The local clock when it was read."""

    def aged(self, now: float) -> float:
        return self.uncertainty + (now - self.at) * DRIFT


class RedisClock:
    """Milliseconds on Redis's clock, derived from ``local`` and a ``TIME`` reading at most
    ``refresh`` seconds old (one reading in flight at a time)."""

    def __init__(
        self,
        read_time: Callable[[], Awaitable[tuple[int, int]]],
        *,
        refresh: float = 5.0,
        local: Callable[[], float] = monotonic_ms,
    ) -> None:
        self._read_time = read_time
        self._refresh_ms = refresh * 1000
        self._local = local
        self.reading: Reading | None = None
        self._reading: asyncio.Future[None] | None = None
        self._read_at = float("-inf")

    async def now_ms(self) -> int:
        if self._local() - self._read_at >= self._refresh_ms:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
                self._reading.add_done_callback(self._read_done)
            await asyncio.shield(self._reading)
        assert self.reading is not None
        return round(self._local() + self.reading.offset)

    async def _sample(self) -> Reading:
        before = self._local()
        seconds, micros = await self._read_time()
        after = self._local()
        return Reading(seconds * 1000 + micros / 1000 - before, after - before, after)

    def _read_done(self, _: asyncio.Future[None]) -> None:
        self._reading = None

    async def _read(self) -> None:
        found = min([await self._sample() for _ in range(SAMPLES)], key=lambda r: r.uncertainty)
        after = found.at
        kept = self.reading
        if kept is None or found.uncertainty <= kept.aged(after):
            self.reading = found
        elif abs(found.offset - kept.offset) > found.uncertainty + kept.aged(after):
            self.reading = found  # the clocks jumped apart: the kept reading is wrong now
        self._read_at = after
