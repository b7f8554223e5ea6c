"""The arq job: re-rank one dataset line and record its outcome.

Redis failing is never the line's failure.  Before the provider is asked, a Redis error hands
the line back to the queue (arq's ``Retry``).  After it answered, the record write is retried
with backoff for as long as the job's time allows; if Redis is still away, the outcome is kept
in this process and the line handed back, so its next run here writes it without asking the
provider again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from arq import Retry
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

from jobs import keys
from jobs.cache import CacheRead, CacheStats, CacheWrite, ScoreCache
from jobs.coalescer import Coalescer
from jobs.corpus_stats import StatisticsCache
from jobs.docstore import document_keys, hydrate
from jobs.payload import LinePayload, rerank_request
from jobs.records import FAILED, SUCCEEDED, RecordWriter, Written, failure_record, success_record
from jobs.runner import FINISHED
from providers.errors import (
    ConfigurationError,
    DeadlineExceededError,
    DeferredError,
    DocumentMissingError,
    RerankError,
)
from providers.events import NO_OBSERVER, Observer
from providers.redaction import PATTERNS_ONLY, Redactor
from providers.reranker import Reranker
from providers.types import RerankResponse

__all__ = [
    "FIRST_RETRY_WAIT",
    "HAND_BACK_DEFER_SECONDS",
    "MAX_HELD_OUTCOMES",
    "MIN_WRITE_SECONDS",
    "WRITE_MARGIN_SECONDS",
    "WorkerState",
    "rerank_line",
]

log = logging.getLogger("rerank_runner.worker")

WRITE_MARGIN_SECONDS = 2.0
"""The record write gives up this long before arq's job timeout, so the line is handed back
instead of arq timing the job out (which would drop it without a record)."""
MIN_WRITE_SECONDS = 1.0
HAND_BACK_DEFER_SECONDS = 1.0
FIRST_RETRY_WAIT = 0.1
"""A failed record write is tried again after up to this long, then backs off exponentially."""
MAX_HELD_OUTCOMES = 10_000
"""Outcomes kept in memory while Redis is away; beyond this the oldest is dropped (its line
runs again)."""


@dataclass
class WorkerState:
    """What every job in a worker process shares, built once at start-up."""

    reranker: Reranker
    writer: RecordWriter
    line_deadline: float
    max_tries: int
    redactor: Redactor = field(default=PATTERNS_ONLY)
    """The last line of defence: no failure record or log line leaves with a secret in it."""
    job_timeout: float = 300.0
    held: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """Outcomes whose record write failed (Redis away), by job id, until the line runs again."""
    cache: ScoreCache | None = None
    """None: ``RR_CACHE_TTL_DAYS=0``, every line is requested."""
    statistics: StatisticsCache | None = None
    """Corpus statistics for the local models; None only where no line names a corpus."""
    observer: Observer = field(default=NO_OBSERVER)
    """Hears of each line's outcome once its record is written (metrics, stats, logs)."""
    reads: Coalescer = field(default_factory=Coalescer)
    """The line-state reads of lines that start together, sent in one round trip."""


@dataclass(frozen=True, slots=True)
class _Prefetched:
    """The line's cache read, made in the line-state round trip, and what it found."""

    looked: CacheRead
    found: Any


_Scored = tuple[RerankResponse, CacheStats | None, CacheWrite | None]


async def _rerank(state: WorkerState, line: LinePayload, prefetched: _Prefetched | None) -> _Scored:
    request = rerank_request(line)
    if (corpus := line.get("corpus")) and state.reranker.ranks_locally(line["model"]):
        if state.statistics is None:
            raise ConfigurationError(f"line names corpus {corpus} but this worker cannot load statistics")
        request = replace(request, collection=await state.statistics.get(corpus))
    if state.cache is None:
        return await state.reranker.rerank(line["model"], request), None, None
    if prefetched is not None:
        looked, found = prefetched.looked, prefetched.found
    else:
        looked = state.cache.lookup(line["model"], request)
        found = None if line.get("no_cache", False) else await state.cache.fetch(looked)
    return await state.cache.rerank_found(line["model"], request, looked, found)


def _cache_read(state: WorkerState, line: LinePayload) -> CacheRead | None:
    """The line's cache read when it can ride with the line-state read: not when the line's
    documents are still in the document store or its scores depend on corpus statistics."""
    if state.cache is None or line.get("no_cache", False) or not line["documents"] or document_keys(line):
        return None
    if line.get("corpus") and state.reranker.ranks_locally(line["model"]):
        return None
    try:
        return state.cache.lookup(line["model"], rerank_request(line))
    except RerankError:  # the line fails when it is re-ranked, with its record
        return None


def _hand_back(job: str, what: str, exc: BaseException) -> Retry:
    log.warning("line %s: Redis failed while %s (%r); handing the line back", job, what, exc)
    return Retry(defer=HAND_BACK_DEFER_SECONDS)


@dataclass(frozen=True, slots=True)
class _LineState:
    cancelled: bool
    stale: bool
    """The batch now holds another run than the line's."""
    succeeded: bool
    """The line already has its result."""
    documents: list[bytes | None]
    """The line's stored documents."""
    prefetched: _Prefetched | None


async def _line_state(
    reads: Coalescer, redis: Redis, line: LinePayload, job: str, looked: CacheRead | None
) -> _LineState:
    """What the line needs to know before it is sent, and its cache read, in one round trip
    (shared with the lines that start in the same event-loop turn; their batch's flags are
    read once for all of them)."""
    stored = document_keys(line)
    batch_key = keys.batch(line["batch"])

    def flags(pipe: Pipeline) -> None:
        pipe.hmget(batch_key, ["cancelled", "run"])

    def queue(pipe: Pipeline) -> None:
        pipe.hget(keys.result(job), "status")
        if stored:
            pipe.mget(stored)
        if looked is not None:
            looked.queue(pipe)

    batch_read = reads.submit(redis, flags, key=batch_key)
    status, *more = await reads.execute(redis, queue)
    [(cancelled, run)] = await asyncio.shield(batch_read)
    return _LineState(
        cancelled=bool(cancelled),
        stale=(run or b"").decode() != line.get("run", ""),
        succeeded=status is not None and status.decode() == SUCCEEDED,
        documents=more[0] if stored else [],
        prefetched=_Prefetched(looked, more[-1]) if looked is not None else None,
    )


async def _record(
    state: WorkerState,
    line: LinePayload,
    job: str,
    outcome: tuple[str, dict[str, Any]],
    deadline: float,
    cache: CacheWrite | None = None,
) -> Written:
    """Write the outcome (and finish the job, and write the cache), retrying Redis errors until
    ``deadline`` (event-loop time); then hold it and hand the line back.  A lost cache write
    costs only a later miss, so it is not held."""
    status, record = outcome
    loop = asyncio.get_running_loop()

    async def write() -> Written:
        return await state.writer.record(line["batch"], job, status, record, line, finish=True, cache=cache)

    try:
        # one attempt at least, even when the job's time is spent (a process that was paused)
        async with asyncio.timeout_at(max(deadline, loop.time() + MIN_WRITE_SECONDS)):
            try:
                written = await write()
            except RedisError:  # the retries' machinery is built only when a write fails
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(random.uniform(0, FIRST_RETRY_WAIT))
                async for attempt in AsyncRetrying(
                    stop=stop_after_delay(max(deadline - loop.time(), 0)),
                    wait=wait_random_exponential(multiplier=FIRST_RETRY_WAIT, max=2.0),
                    retry=retry_if_exception_type(RedisError),
                    reraise=True,
                ):
                    with attempt:
                        written = await write()
    except (RedisError, TimeoutError) as exc:
        if len(state.held) >= MAX_HELD_OUTCOMES:
            state.held.pop(next(iter(state.held)))
        state.held[job] = outcome
        raise _hand_back(job, "writing its record", exc) from exc
    state.held.pop(job, None)
    return written


def _failed(line: LinePayload, exc: RerankError, started: float) -> tuple[str, dict[str, Any]]:
    """Every failure is logged once, with its code, whatever its kind."""
    log.warning("line %s of %s failed: %s", line["id"], line["batch"], exc, extra={"code": exc.code})
    return FAILED, failure_record(line, exc.to_record(), time.monotonic() - started)


async def _outcome(
    ctx: dict[str, Any], state: WorkerState, line: LinePayload, job: str, prefetched: _Prefetched | None
) -> tuple[str, dict[str, Any], CacheWrite | None]:
    """Re-rank the line: its record and cache write, or an arq ``Retry`` that hands it back."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(state.line_deadline):
            response, stats, write = await _rerank(state, line, prefetched)
        record = success_record(line, response, time.monotonic() - started)
        if stats is not None:
            record["cache"] = stats.to_json()
        return SUCCEEDED, record, write
    except RedisError as exc:  # the shared limiter was unreachable: nothing was sent
        raise _hand_back(job, "asking the rate limiter", exc) from exc
    except DeferredError as exc:
        if ctx.get("job_try", 1) < state.max_tries - 1:
            # nothing can take the line soon: free this slot, come back when capacity is due
            raise Retry(defer=exc.delay) from exc
        return *_failed(line, exc, started), None
    except TimeoutError:
        deadline_error = DeadlineExceededError(f"line did not finish within {state.line_deadline:g}s")
        return *_failed(line, deadline_error, started), None
    except RerankError as exc:
        state.redactor.error(exc)
        return *_failed(line, exc, started), None
    except Exception as exc:  # a bug must still leave a record, never a silently lost line
        log.exception("line %s of %s crashed", line["id"], line["batch"])
        error = {"code": "internal", "message": repr(exc), "retryable": False}
        return FAILED, failure_record(line, error, time.monotonic() - started), None


async def rerank_line(ctx: dict[str, Any], line: LinePayload) -> None:
    """Sets ``ctx[FINISHED]`` once the record write has also finished the job (arq's finish is
    then skipped by :class:`jobs.runner.LeanRunner`; arq's plain ``Worker`` repeats it, harmlessly)."""
    state: WorkerState = ctx["state"]
    batch = line["batch"]
    job = keys.job_id(batch, line["id"])
    deadline = asyncio.get_running_loop().time() + state.job_timeout - WRITE_MARGIN_SECONDS
    if held := state.held.get(job):
        ctx[FINISHED] = await _record(state, line, job, held, deadline) != Written.STALE
        state.observer.line_finished(*held)
        return
    try:
        found = await _line_state(state.reads, ctx["redis"], line, job, _cache_read(state, line))
    except RedisError as exc:
        raise _hand_back(job, "checking the batch", exc) from exc
    if found.cancelled or found.succeeded:  # a redelivered line that already has its result is not paid twice
        return
    if found.stale:
        # the batch was replaced (or expired) since this job was queued: its scores belong to
        # no batch, so the line is not worth a request
        log.warning("line %s of %s skipped: the batch now holds another run", line["id"], batch)
        return
    write = None
    try:
        line = hydrate(line, found.documents)  # the line as written, before anything else sees it
        status, record, write = await _outcome(ctx, state, line, job, found.prefetched)
    except DocumentMissingError as exc:
        log.warning("line %s of %s failed: %s", line["id"], batch, exc, extra={"code": exc.code})
        status, record = FAILED, failure_record(line, exc.to_record(), 0.0)
    if status == FAILED:
        record["error"] = state.redactor.record(record["error"])
    record["job_try"] = ctx.get("job_try", 1)
    written = await _record(state, line, job, (status, record), deadline, write)
    ctx[FINISHED] = written != Written.STALE
    state.observer.line_finished(status, record)
