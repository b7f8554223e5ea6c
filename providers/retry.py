"""The bounded retry policy every provider call goes through.

Only errors typed as retryable are retried; the wait is exponential backoff with
full jitter unless the provider said how long to wait (``Retry-After`` wins).
Sleep is injectable so tests run instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from providers.errors import RateLimitedError, RerankError

__all__ = ["RetryPolicy", "Sleep"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RerankError) and exc.retryable


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    max_total_seconds: float = 60.0
    initial_wait: float = 0.5
    max_wait: float = 20.0
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def _wait(self, state: RetryCallState, failover: bool = False, gate_cools: bool = False) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if failover or (gate_cools and isinstance(exc, RateLimitedError)):
            return 0.0
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return float(min(retry_after, self.max_total_seconds))
        jitter = wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait)
        return float(jitter(state))

    async def call(
        self, attempt: Callable[[], Awaitable[T]], *, failover: bool = False, gate_cools: bool = False
    ) -> tuple[T, int]:
        """Run ``attempt`` until it succeeds or the policy gives up; returns (result, attempts).

        ``failover``: the next attempt can go elsewhere (the caller's gate holds the failing
        deployment back), so it starts at once instead of waiting.
        ``gate_cools``: the caller's gate itself holds a throttled deployment back for its
        ``Retry-After`` (and hands the line back to the queue when that is long), so a 429 is
        not waited out here as well.
        """
        started = time.monotonic()
        try:
            return await attempt(), 1
        except Exception as exc:  # the retries' machinery is built only when an attempt fails
            if not _is_retryable(exc) or self.max_attempts <= 1:
                raise
            first: Exception | None = exc

        async def again() -> T:
            nonlocal first
            if first is not None:  # tenacity sees the first attempt's outcome as its own first
                failed, first = first, None
                raise failed
            return await attempt()

        elapsed = time.monotonic() - started
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_total_seconds - elapsed),
            wait=lambda state: self._wait(state, failover, gate_cools),
            retry=retry_if_exception(_is_retryable),
            sleep=self.sleep,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                result = await again()
                return result, try_.retry_state.attempt_number
        raise AssertionError("unreachable: tenacity re-raises the last error")
