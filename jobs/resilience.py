"""A worker process that rides out Redis outages and keeps its liveness signal.

arq 0.28's ``Worker`` lets any Redis error out of its poll loop, which ends the process ("Connection
closed by server."): a job's own Redis calls fail inside ``run_job`` and are re-raised by the
next poll, and an error inside ``start_jobs`` also leaks a job slot.  ``ResilientWorker`` keeps
arq's semantics and adds, around them:

* connections that retry with bounded exponential backoff and ping idle sockets before use
  (:func:`resilient_redis_settings`, :data:`HEALTH_CHECK_SECONDS`);
* a poll loop that, on a Redis error, waits for Redis with backoff (up to
  ``RR_REDIS_OUTAGE_SECONDS``, then the process exits 4) and goes on;
* a job whose bookkeeping around the function failed is handed back (its in-progress key
  deleted) once Redis answers, never left to the 310 s expiry;
* jobs taken with their lease in one atomic step, and a background task that renews the
  heartbeat and leases and runs the reaper (:mod:`jobs.liveness`);
* arq's start pipeline and finish transaction gone from a line's path: the claim step reads
  each job's value and counts its try, and the line's record write finishes it
  (:class:`jobs.runner.LeanRunner`, which documents what differs from arq's ``run_job``).

``python worker.py`` (and ``rerank-runner worker``) run it; local mode and ``arq
worker.WorkerSettings`` run arq's plain ``Worker``, without these guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.utils import timestamp_ms
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs import keys
from jobs.liveness import Claim, Liveness
from jobs.packing import pack_with_hiredis
from jobs.runner import LeanRunner

__all__ = [
    "BUSY_SKIP_SECONDS",
    "COMMAND_RETRIES",
    "HEALTH_CHECK_SECONDS",
    "OUTAGE_BACKOFF_CAP",
    "READ_AHEAD_PAGES",
    "ResilientWorker",
    "resilient_redis_settings",
    "wait_for_redis",
]

log = logging.getLogger("rerank_runner.worker")

COMMAND_RETRIES = 6
"""redis-py retries of one command on a connection error: ~3 s of jittered backoff (cap 1 s)."""
HEALTH_CHECK_SECONDS = 10
"""A connection idle this long is pinged (and replaced if dead) before it carries a command."""
OUTAGE_BACKOFF_CAP = 5.0
BUSY_SKIP_SECONDS = 1.0
"""A job another worker was found running is not asked for again for this long: each poll reads
the head of the queue, where the other workers' running jobs are (a job handed back by the
reaper waits at most this much longer)."""
READ_AHEAD_PAGES = 8
"""Reads of ``queue_read_limit`` jobs one poll may make in all when free slots remain after a
read: running jobs stay in the queue until they finish, so once the workers together run more
jobs than one read returns (6 workers at the default 64 slots, reading 320), a worker that read
only the head would find nothing it may take, and the workers together would run no more lines
at once than one read returns (docs/performance.md, goal 3)."""


def resilient_redis_settings(settings: RedisSettings) -> RedisSettings:
    """``settings`` with bounded retries on connection errors and timeouts (Redis restarting,
    ``CLIENT KILL``, ``LOADING`` after a restart)."""
    return dataclasses.replace(
        settings,
        retry=RedisRetry(EqualJitterBackoff(cap=1.0, base=0.05), COMMAND_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        retry_on_timeout=True,
    )


async def wait_for_redis(
    ping: Callable[[], Awaitable[Any]],
    give_up_after: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Ping until Redis answers, backing off exponentially (capped); raise the last error after
    ``give_up_after`` seconds."""
    deadline = time.monotonic() + give_up_after
    delay = 0.1
    while True:
        try:
            await ping()
            return
        except RedisError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
        await sleep(min(delay, remaining))
        delay = min(delay * 2, OUTAGE_BACKOFF_CAP)


class ResilientWorker(LeanRunner):
    """arq's ``Worker`` that survives Redis outages and publishes a heartbeat (module docstring)."""

    def __init__(
        self,
        *args: Any,
        heartbeat_seconds: float,
        worker_ttl_seconds: float,
        redis_outage_seconds: float,
        worker_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat_seconds = heartbeat_seconds
        self.worker_ttl_seconds = worker_ttl_seconds
        self.redis_outage_seconds = redis_outage_seconds
        self.worker_id = worker_id
        self.liveness: Liveness | None = None
        self._released: set[str] = set()
        """Jobs whose run here ended since the last beat: their leases are dropped then."""
        self._beat_task: asyncio.Task[None] | None = None
        self._busy: dict[str, float] = {}
        """Jobs other workers run, until when they are not asked for (:data:`BUSY_SKIP_SECONDS`)."""
        self._chained_startup = self.on_startup
        self._chained_shutdown = self.on_shutdown
        self.on_startup = self._startup
        self.on_shutdown = self._shutdown

    async def main(self) -> None:
        if self._pool is None and self.redis_settings is not None:
            self._pool = await create_pool(
                self.redis_settings,
                job_deserializer=self.job_deserializer,
                job_serializer=self.job_serializer,
                default_queue_name=self.queue_name,
                expires_extra_ms=self.expires_extra_ms,
            )
            await pack_with_hiredis(self._pool)
        self.pool.connection_pool.connection_kwargs["health_check_interval"] = HEALTH_CHECK_SECONDS
        await super().main()

    async def _startup(self, ctx: dict[str, Any]) -> None:
        if self._chained_startup:
            await self._chained_startup(ctx)
        self.liveness = Liveness(
            self.pool,
            worker_id=self.worker_id,
            ttl_seconds=self.worker_ttl_seconds,
            lease_keep_seconds=self.in_progress_timeout_s,
            facts={"max_jobs": self.max_jobs},
        )
        await self.liveness.beat(())
        self._beat_task = asyncio.create_task(self._keep_alive(self.liveness))

    async def _shutdown(self, ctx: dict[str, Any]) -> None:
        if self._beat_task:
            self._beat_task.cancel()
            await asyncio.gather(self._beat_task, return_exceptions=True)
        if self.liveness:
            with contextlib.suppress(RedisError):
                await self.liveness.withdraw()
        if self._chained_shutdown:
            await self._chained_shutdown(ctx)

    async def _keep_alive(self, liveness: Liveness) -> None:
        """Renew heartbeat and leases every beat; reap dead workers' jobs, but only once this
        worker's own beats have been renewed for a whole TTL, so a worker that just reconnected
        after an outage does not take the lines of live workers that have not reconnected yet."""
        healthy_since: float | None = None
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            released, self._released = self._released, set()
            running = [job for job, task in self.tasks.items() if not task.done()]
            try:
                await liveness.beat(running, released)
                now = time.monotonic()
                healthy_since = healthy_since or now
                if now - healthy_since >= self.worker_ttl_seconds:
                    for job in await liveness.reap():
                        log.warning("job %s: its worker stopped beating; handed back to the queue", job)
            except RedisError as exc:
                self._released |= released
                healthy_since = None
                log.warning("heartbeat failed (%s); retrying next beat", exc)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's ``start_jobs`` (same slots, same checks: not in progress, due), except that jobs
        are marked in progress and leased to this worker in one Lua step (:meth:`Liveness.take_many`)
        instead of a WATCH/MULTI of each in-progress key alone, that every slot free at that
        moment is filled by that one step (arq takes one job per round trip), that the step
        also reads each job's value and counts its try (:meth:`LeanRunner.run_claimed`), and
        that the jobs of a read are taken from a random place among them, not the head, and that
        slots still free after a full read are offered the next jobs of the queue
        (:data:`READ_AHEAD_PAGES`)."""
        offset = self._queue_read_offset
        for _ in range(READ_AHEAD_PAGES - 1):
            await self._start_read(job_ids)
            if len(job_ids) < self.queue_read_limit or self.sem.locked() or self.job_counter >= self.max_jobs:
                return
            offset += len(job_ids)
            limit = self.queue_read_limit
            job_ids = await self.pool.zrangebyscore(
                self.queue_name, min=float("-inf"), max=timestamp_ms(), start=offset, num=limit
            )
        await self._start_read(job_ids)

    async def _start_read(self, job_ids: list[bytes]) -> None:
        """Offer the free slots the jobs of one read, from a random place among them."""
        now = time.monotonic()
        self._busy = {job: until for job, until in self._busy.items() if until > now}
        # taken from a random place in what the poll read, wrapping round: workers that all start
        # at the head of the queue mostly meet each other's running jobs there (a command each)
        start = random.randrange(len(job_ids)) if job_ids else 0
        ids = [*job_ids[start:], *job_ids[:start]]
        pending = [job for raw_id in reversed(ids) if (job := raw_id.decode()) not in self._busy]
        while pending:
            slots = await self._free_slots(len(pending))
            if not slots:
                return
            claimed = [pending.pop() for _ in range(slots)]
            self.job_counter += slots
            await self._take(claimed)

    async def _free_slots(self, wanted: int) -> int:
        """Wait for one free slot, then hold every other slot free now (up to ``wanted``)."""
        await self.sem.acquire()
        slots = 1
        while slots < wanted and not self.sem.locked():
            await self.sem.acquire()  # free: returns at once
            slots += 1
        allowed = max(min(slots, self.max_jobs - self.job_counter), 0)
        for _ in range(slots - allowed):
            self.sem.release()
        return allowed

    async def _take(self, claimed: list[str]) -> None:
        """Start the ``claimed`` jobs this worker may take; give back the slots of the others."""
        assert self.liveness is not None, "started before on_startup"
        fresh = [job_id for job_id in claimed if job_id not in self.tasks]
        for _ in range(len(claimed) - len(fresh)):  # already running here
            self._release_sem_dec_counter_on_complete()
        if not fresh:
            return
        try:
            in_progress_ms = int(self.in_progress_timeout_s * 1000)
            claims, busy = await self.liveness.claim(fresh, in_progress_ms, timestamp_ms())
        except BaseException:
            for _ in fresh:
                self._release_sem_dec_counter_on_complete()
            raise
        until = time.monotonic() + BUSY_SKIP_SECONDS
        self._busy.update(dict.fromkeys(busy, until))
        for job_id, claim in zip(fresh, claims, strict=True):
            if claim is None:  # running elsewhere, finished, or deferred
                self._release_sem_dec_counter_on_complete()
                continue
            task = self.loop.create_task(self._run_claimed(job_id, claim))
            task.add_done_callback(functools.partial(self._job_ended, job_id))
            self.tasks[job_id] = task

    def _job_ended(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._released.add(job_id)
        self._release_sem_dec_counter_on_complete()

    async def _run_claimed(self, job_id: str, claim: Claim) -> None:
        try:
            await self.run_claimed(job_id, claim)
        except RedisError as exc:
            log.warning("job %s: Redis failed around the job (%s); handing it back", job_id, exc)
            await self._hand_back(job_id)

    async def _hand_back(self, job_id: str) -> None:
        """The job's bookkeeping failed, so arq could not finish or re-queue it: free its
        in-progress key once Redis answers (its queue entry is still there, so it runs again;
        a line already recorded is not sent to the provider twice)."""
        key = keys.arq_in_progress(job_id)
        await wait_for_redis(lambda: self.pool.delete(key), self.redis_outage_seconds)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except RedisError as exc:
            log.warning("Redis failed (%s: %s); waiting for it to come back", type(exc).__name__, exc)
            await wait_for_redis(self.pool.ping, self.redis_outage_seconds)
            log.warning("Redis is back; resuming")
