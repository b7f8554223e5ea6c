"""Global rate limits, concurrency caps and cool-downs, shared by every worker through Redis.

Each deployment has a GCRA limiter per dimension (requests per minute, estimated tokens
per minute) kept as a "theoretical arrival time" in Redis, a sorted set of leases for
its concurrency cap, a cool-down key set when the provider says 429 (for its
``Retry-After``) or after a streak of failures, and a failure counter.  One Lua script
looks at every deployment that can serve a line, on Redis's clock, and admits
the line on the one whose next slot comes first, atomically.  A slot due within
``defer_after`` is reserved and the caller sleeps until it (waiting lines never poll);
when none is, it answers how long to wait.  Clients' clocks never matter: each worker
carries Redis's clock between ``TIME`` readings (:class:`providers.clock.RedisClock`), so
an acquire needs no ``TIME`` of its own.

Token cost is estimated as characters / 4 over the query and every document, per
request (see :func:`estimate_tokens`): providers count tokens with their own tokenizers,
which we cannot see, so ``tpm`` limits are approximate by design.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from providers.clock import RedisClock
from providers.deployment import Deployment
from providers.errors import DeferredError, RateLimitedError, RerankError
from providers.events import NO_OBSERVER, Observer
from providers.gate_scripts import ACQUIRE_LUA, OPEN_LUA, RELEASE_LUA
from providers.render import document_text
from providers.types import RerankRequest

__all__ = [
    "CHARS_PER_TOKEN",
    "STREAK_COOLED",
    "Gate",
    "GatePolicy",
    "Lease",
    "OpenGate",
    "OpenState",
    "RedisGate",
    "Sleep",
    "estimate_tokens",
]

log = logging.getLogger("rerank_runner.gate")

Sleep = Callable[[float], Awaitable[None]]
OpenState = tuple[float, float, bool]
"""An unlimited deployment's state as last read: (read at, cooling until: milliseconds on the
gate's clock; whether a failure streak is running)."""
CHARS_PER_TOKEN = 4
STREAK_COOLED = 2
"""What the release script answers when a streak of failures started a cool-down."""


def estimate_tokens(request: RerankRequest) -> int:
    """Characters / 4 of the query paired with each document (how rerankers bill)."""
    chars = sum(len(request.query) + len(document_text(d, request.rank_fields)) for d in request.documents)
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


@dataclass
class Lease:
    deployment: Deployment
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    settle: bool = True
    """False: a success has no failure streak to end, so it runs no release script (a
    concurrency slot, if ``held``, is given back with one ``ZREM``; else no Redis call)."""
    held: bool = False
    """Whether the lease holds a slot of its deployment's concurrency cap."""


class Gate(Protocol):
    """Decides which deployment takes the next attempt, and when."""

    cools_down: bool
    """Whether a 429 holds its deployment back here (for its ``Retry-After``)."""

    async def acquire(self, deployments: Sequence[Deployment], requests: int, tokens: int) -> Lease: ...

    async def release(self, lease: Lease, error: RerankError | None) -> None: ...


class OpenGate:
    """No limits: deployments take turns (one process, nothing shared)."""

    cools_down = False

    def __init__(self) -> None:
        self._turn = itertools.count()

    async def acquire(self, deployments: Sequence[Deployment], requests: int, tokens: int) -> Lease:
        return Lease(deployments[next(self._turn) % len(deployments)])

    async def release(self, lease: Lease, error: RerankError | None) -> None:
        return None


@dataclass
class GatePolicy:
    burst_requests: float = 0.5
    """GCRA tolerance, in requests: how far ahead of its even pace a deployment may be.
    Small on purpose: requests admitted exactly one interval apart still arrive jittered, and
    a provider's strict limiter answers early arrivals with 429 (and a cool-down for all)."""
    defer_after: float = 5.0
    """A wait longer than this hands the line back to the queue instead of holding a slot."""
    throttle_cooldown: float = 1.0
    """Cool-down after a 429 that did not say how long (seconds)."""
    failure_threshold: int = 3
    """Consecutive failures (5xx, timeouts, connection errors) that cool a deployment down."""
    failure_cooldown: float = 5.0
    lease_seconds: float = 300.0
    """A concurrency slot held by a worker that died is freed after this long."""
    poll: float = 0.05
    """How soon to look again when a deployment is at its concurrency cap."""
    open_refresh: float = 0.1
    """A deployment with no limits: how long one read of its cool-down serves this worker's
    lines (a cool-down another worker sets is honoured here this much later at most; one this
    worker's own attempt causes, at once)."""
    recheck_after: float = 0.025
    """A reserved slot waited for longer than this is checked for a cool-down that started
    meanwhile (one ``GET``).  Shorter waits are mostly the workers' own jitter: each passes the
    limiter the time on its carried clock (:mod:`providers.clock`), and the script runs a few
    milliseconds later, more on a loaded machine; a 429 in such a wait costs this line's own
    attempt at most."""
    clock_refresh: float = 5.0
    """How often Redis's ``TIME`` is read again to carry its clock here (:mod:`providers.clock`)."""


class RedisGate:
    """The shared gate: every worker of every machine consults the same Redis."""

    cools_down = True

    def __init__(
        self,
        redis: Redis,
        key_prefix: Callable[[str], str],
        policy: GatePolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        now_ms: Callable[[], int] | None = None,
        observer: Observer = NO_OBSERVER,
        clock: RedisClock | None = None,
    ) -> None:
        self.redis = redis
        self.observer = observer
        self.key_prefix = key_prefix
        self.policy = policy or GatePolicy()
        self.sleep = sleep
        self.now_ms = now_ms
        """A fake clock for tests; by default Redis's own clock is used."""
        self.clock = clock or RedisClock(lambda: redis.time(), refresh=self.policy.clock_refresh)
        """Redis's clock, as this worker carries it."""
        self._acquire = redis.register_script(ACQUIRE_LUA)
        self._turn = itertools.count()
        self._release = redis.register_script(RELEASE_LUA)
        self._open = redis.register_script(OPEN_LUA)
        self._open_seen: dict[str, OpenState] = {}
        """Unlimited deployments' last read: label -> (read at, cooling until, failure streak),
        in milliseconds on :meth:`_clock_ms`."""
        self._open_reads: dict[tuple[str, ...], asyncio.Future[dict[str, OpenState]]] = {}
        self._open_changes = 0
        """Counts this worker's outcomes sent to Redis: a read that overlapped one is not kept."""

    def _args(self, deployment: Deployment, requests: int, tokens: int) -> list[Any]:
        limits = deployment.limits
        t_req = 60_000 / limits.rpm if limits.rpm else 0
        t_tok = 60_000 / limits.tpm if limits.tpm else 0
        burst = self.policy.burst_requests
        return [
            self.key_prefix(deployment.label),
            t_req,
            t_req * burst,
            t_tok,
            # a token budget's tolerance: one request of this size on top of the steady pace
            t_tok * tokens * burst,
            limits.max_concurrency or 0,
            requests,
            tokens,
        ]

    async def acquire(self, deployments: Sequence[Deployment], requests: int, tokens: int) -> Lease:
        # the script takes the first of equally loaded deployments: start each turn at the
        # next one, so deployments without limits share lines too
        start = next(self._turn) % len(deployments)
        deployments = [*deployments[start:], *deployments[:start]]
        if not any(d.limits.rpm or d.limits.tpm or d.limits.max_concurrency for d in deployments):
            return await self._acquire_open(deployments)
        lease = Lease(deployments[0])
        args: list[Any] = [
            "",
            lease.token,
            int(self.policy.lease_seconds * 1000),
            int(self.policy.poll * 1000),
            int(self.policy.defer_after * 1000),
        ]
        for deployment in deployments:
            args += self._args(deployment, requests, tokens)
        while True:
            args[0] = await self._now()
            chosen, wait_ms, streak = await self._acquire(keys=[], args=args)
            wait = int(wait_ms) / 1000
            if int(chosen) >= 0:
                # the slot is reserved at its time on the limiter's clock: wait for it and go,
                # without asking again (no herd of waiters polling, no extra jitter); its time
                # is counted from the time passed, so the round trip is not waited on top
                wait = (args[0] + int(wait_ms) - await self._now()) / 1000
                lease.deployment = deployments[int(chosen)]
                lease.settle = bool(int(streak))
                lease.held = bool(lease.deployment.limits.max_concurrency)
                if wait <= 0 or not await self._cooled_while_waiting(lease, wait):
                    return lease
                await self.release(lease, RerankError("the deployment started cooling down"))
                lease = Lease(deployments[0])
                args[1] = lease.token
                continue
            if wait > self.policy.defer_after:
                names = ", ".join(d.label for d in deployments)
                self.observer.deferred(names, wait)
                raise DeferredError(f"{names}: no capacity for {wait:.1f}s", delay=wait)
            await self.sleep(wait)

    async def _cooled_while_waiting(self, lease: Lease, wait: float) -> bool:
        """Sleep until the reserved slot; whether a cool-down started meanwhile (a 429 while this
        line slept cools the deployment for every worker: the slot is then given up).  A wait
        within the workers' clock jitter (``recheck_after``) is not checked again."""
        self.observer.gate_wait(lease.deployment.label, wait)
        try:
            await self.sleep(wait)
            if wait <= self.policy.recheck_after:
                return False
            cooling_until = await self.redis.get(self.key_prefix(lease.deployment.label) + ":cool")
            return cooling_until is not None and float(cooling_until) > await self._now()
        except BaseException:
            await self.release(lease, RerankError("the attempt did not start"))
            raise

    async def _now(self) -> int:
        """Milliseconds on the limiter's clock (Redis's), for the scripts."""
        return self.now_ms() if self.now_ms is not None else await self.clock.now_ms()

    def _clock_ms(self) -> float:
        return self.now_ms() if self.now_ms is not None else time.monotonic() * 1000

    async def _acquire_open(self, deployments: Sequence[Deployment]) -> Lease:
        """Deployments nothing limits skip the limiter's script: only shared cool-downs hold them
        back.  Their state is read by one lighter script at most every ``open_refresh`` seconds
        per worker, and a success releases nothing unless it ends a failure streak."""
        while True:
            seen = await self._open_state(deployments)
            now = self._clock_ms()
            for deployment, (_, cooling_until, streak) in zip(deployments, seen, strict=True):
                if cooling_until <= now:
                    return Lease(deployment, settle=streak)
            soonest = min(range(len(seen)), key=lambda n: seen[n][1])
            wait = (seen[soonest][1] - now) / 1000
            if wait > self.policy.defer_after:
                names = ", ".join(d.label for d in deployments)
                self.observer.deferred(names, wait)
                raise DeferredError(f"{names}: cooling down for {wait:.1f}s", delay=wait)
            self.observer.gate_wait(deployments[soonest].label, wait)
            await self.sleep(wait)

    async def _open_state(self, deployments: Sequence[Deployment]) -> list[OpenState]:
        now = self._clock_ms()
        seen = [self._open_seen.get(d.label) for d in deployments]
        fresh = [s for s in seen if s is not None and now - s[0] < self.policy.open_refresh * 1000]
        if len(fresh) == len(deployments):
            return fresh
        # one read in flight per set of deployments: the lines that find the state stale
        # while it is being read wait for that read instead of each sending their own
        key = tuple(sorted(d.label for d in deployments))
        reading = self._open_reads.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read_open(deployments, now))
            self._open_reads[key] = reading
            reading.add_done_callback(lambda done: self._open_reads.pop(key, None))
        states = await asyncio.shield(reading)
        return [states[d.label] for d in deployments]

    async def _read_open(self, deployments: Sequence[Deployment], now: float) -> dict[str, OpenState]:
        args: list[Any] = [await self._now(), *(self.key_prefix(d.label) for d in deployments)]
        changes = self._open_changes
        found = [int(v) for v in await self._open(keys=[], args=args)]
        states = {
            d.label: (now, now + found[2 * n], bool(found[2 * n + 1])) for n, d in enumerate(deployments)
        }
        if changes == self._open_changes:
            self._open_seen.update(states)
        return states

    async def release(self, lease: Lease, error: RerankError | None) -> None:
        policy = self.policy
        if error is None and not lease.settle:
            if lease.held:
                await self._give_back(lease)
            return
        self._forget(lease)
        if error is None:
            outcome, cool = "ok", 0.0
        elif isinstance(error, RateLimitedError):
            outcome = "throttled"
            cool = error.retry_after if error.retry_after is not None else policy.throttle_cooldown
            self.observer.cooldown(lease.deployment.label, cool)
        elif error.retryable:
            outcome, cool = "failed", 0.0
        else:
            outcome, cool = "other", 0.0
        try:
            answer = await self._release(
                keys=[],
                args=[
                    self.key_prefix(lease.deployment.label),
                    lease.token,
                    outcome,
                    int(cool * 1000),
                    policy.failure_threshold,
                    int(policy.failure_cooldown * 1000),
                    self.now_ms() if self.now_ms is not None else "",
                ],
            )
            if answer == STREAK_COOLED:
                self.observer.cooldown(lease.deployment.label, policy.failure_cooldown)
        except RedisError as exc:
            self._not_released(lease, exc)
        finally:
            self._forget(lease)

    async def _give_back(self, lease: Lease) -> None:
        """A success's concurrency slot, when nothing else is to be reported."""
        try:
            await self.redis.zrem(self.key_prefix(lease.deployment.label) + ":leases", lease.token)
        except RedisError as exc:
            self._not_released(lease, exc)

    def _not_released(self, lease: Lease, exc: RedisError) -> None:
        # Best effort: the answer the attempt got (maybe paid for) matters more than the
        # bookkeeping, and an unreleased concurrency lease expires by itself.
        log.warning(
            "%s: could not release a gate slot (%r); it frees itself within %gs",
            lease.deployment.label, exc, self.policy.lease_seconds,
        )  # fmt: skip

    def _forget(self, lease: Lease) -> None:
        """What an outcome changes is read again, and a read overlapping it is not kept."""
        self._open_changes += 1
        self._open_seen.pop(lease.deployment.label, None)
