"""Batch bookkeeping: status, export of results, cancellation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from arq.jobs import serialize_job
from redis.asyncio import Redis

from jobs import keys
from jobs.serializer import serialize

__all__ = [
    "CANCEL_LUA",
    "EXPORT_CHUNK",
    "REQUEUE_LUA",
    "BatchBusyError",
    "BatchStatus",
    "ExportCounts",
    "UnknownBatchError",
    "batch_status",
    "cancel",
    "drop",
    "export",
    "export_to_files",
    "list_batches",
    "release_in_progress",
    "retry_failed",
]

EXPORT_CHUNK = 1000


@dataclass(frozen=True)
class BatchStatus:
    batch: str
    total: int
    succeeded: int
    failed: int
    cancelled: bool
    created_at: float | None
    started_at: float | None
    updated_at: float | None
    cache_hits: int = 0
    """Documents of succeeded lines scored from the score cache (and requested: misses)."""
    cache_misses: int = 0
    local_pid: int | None = None
    """The process running the batch's in-process workers (local mode), while it runs."""

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def pending(self) -> int:
        return max(self.total - self.done, 0)

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.pending == 0

    @property
    def rate(self) -> float | None:
        """Lines per second since the first result (to the last, once finished)."""
        if self.started_at is None or self.done == 0:
            return None
        end = self.updated_at if self.finished and self.updated_at else time.time()
        elapsed = end - self.started_at
        return self.done / elapsed if elapsed > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if self.finished:
            return 0.0
        return self.pending / rate if rate else None

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "pending": self.pending,
            "cancelled": self.cancelled,
            "finished": self.finished,
            "rate_per_s": round(self.rate, 2) if self.rate else None,
            "eta_s": round(self.eta_seconds, 1) if self.eta_seconds is not None else None,
            "cache": {"hits": self.cache_hits, "misses": self.cache_misses},
        }


class UnknownBatchError(LookupError):
    pass


def _float(value: bytes | None) -> float | None:
    return float(value) if value else None


async def batch_status(redis: Redis, batch: str) -> BatchStatus:
    fields = await redis.hgetall(keys.batch(batch))  # type: ignore[misc]
    if not fields:
        raise UnknownBatchError(f"no batch named {batch!r} in this Redis")
    count = {k.decode(): v for k, v in fields.items()}
    return BatchStatus(
        batch=batch,
        total=int(count.get("total", 0)),
        succeeded=int(count.get("succeeded", 0)),
        failed=int(count.get("failed", 0)),
        cancelled=bool(count.get("cancelled")),
        created_at=_float(count.get("created_at")),
        started_at=_float(count.get("started_at")),
        updated_at=_float(count.get("updated_at")),
        cache_hits=int(count.get("cache_hits", 0)),
        cache_misses=int(count.get("cache_misses", 0)),
        local_pid=int(count["local_pid"]) if count.get("local_pid") else None,
    )


async def list_batches(redis: Redis) -> list[str]:
    return [b.decode() for b in await redis.zrange(keys.BATCHES, 0, -1)]


async def _line_chunks(
    redis: Redis, batch: str, buckets: int | None = None
) -> AsyncIterator[list[tuple[Any, int, str]]]:
    """(line id, line number, job id) in dataset order, a chunk at a time; ``buckets``: the
    batch hash's ``line_buckets`` when it is read beforehand."""
    async for members in _line_members(redis, batch, buckets):
        chunk = []
        for raw_id, line_no in members:
            line_id = orjson.loads(raw_id)
            chunk.append((line_id, int(line_no), keys.job_id(batch, line_id)))
        yield chunk


async def _line_buckets(redis: Redis, batch: str) -> int:
    return int(await redis.hget(keys.batch(batch), "line_buckets") or 0)  # type: ignore[misc]


async def _line_members(
    redis: Redis, batch: str, buckets: int | None
) -> AsyncIterator[list[tuple[bytes, float]]]:
    """The line set's (member, line number) pairs in dataset order, about EXPORT_CHUNK at a time:
    bucket by bucket, or from the one sorted set of a batch an older version enqueued."""
    if await redis.exists(keys.batch_lines(batch)):
        start = 0
        while members := await redis.zrange(
            keys.batch_lines(batch), start, start + EXPORT_CHUNK - 1, withscores=True
        ):
            yield members
            start += EXPORT_CHUNK
        return
    if buckets is None:
        buckets = await _line_buckets(redis, batch)
    step = max(1, EXPORT_CHUNK // keys.LINES_PER_BUCKET)
    for first in range(0, buckets, step):
        async with redis.pipeline(transaction=False) as pipe:
            for bucket in range(first, min(first + step, buckets)):
                pipe.zrange(keys.batch_line_bucket(batch, bucket), 0, -1, withscores=True)
            found = [member for members in await pipe.execute() for member in members]
        if found:
            yield found


@dataclass
class ExportCounts:
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0


def _unfinished_reason(cancelled: bool, queued: bool, running: bool) -> tuple[str, str]:
    if running:
        return "running", "the line is being re-ranked right now"
    if queued:
        if cancelled:
            return "cancelled", "the batch was cancelled before this line ran"
        return "queued", "the line is waiting for a worker"
    if cancelled:
        return "cancelled", "the batch was cancelled before this line ran"
    return "lost", "no job and no result (expired, or out of tries); run enqueue again to re-queue it"


async def export(redis: Redis, batch: str, results: BinaryIO, errors: BinaryIO) -> ExportCounts:
    """Write every line of the batch, in dataset order, to exactly one of the two files."""
    status = await batch_status(redis, batch)
    run = await redis.hget(keys.batch(batch), "run")  # type: ignore[misc]
    counts = ExportCounts()
    async for chunk in _line_chunks(redis, batch):
        async with redis.pipeline(transaction=False) as pipe:
            for _, _, job in chunk:
                pipe.hmget(keys.result(job), ["status", "record", "run"])
                pipe.exists(keys.arq_job(job))
                pipe.exists(keys.arq_in_progress(job))
            replies = await pipe.execute()
        for i, (line_id, line_no, _) in enumerate(chunk):
            (state, record, record_run), queued = replies[3 * i], replies[3 * i + 1]
            running = replies[3 * i + 2]
            if state is not None and record_run != run:
                # a record of another run than the batch holds is never exported (belt and
                # braces: the record write already refuses one)
                state = None
            if state == b"succeeded":
                counts.succeeded += 1
                results.write(record + b"\n")
            elif state == b"failed":
                counts.failed += 1
                errors.write(record + b"\n")
            else:
                counts.unfinished += 1
                code, message = _unfinished_reason(status.cancelled, bool(queued), bool(running))
                entry = {"id": line_id, "line": line_no, "error": {"code": code, "message": message}}
                errors.write(orjson.dumps(entry) + b"\n")
    return counts


def export_to_files(results_path: Path, errors_path: Path) -> tuple[BinaryIO, BinaryIO]:
    results_path.parent.mkdir(parents=True, exist_ok=True)
    errors_path.parent.mkdir(parents=True, exist_ok=True)
    return results_path.open("wb"), errors_path.open("wb")


class BatchBusyError(Exception):
    """The batch has lines being re-ranked right now."""


async def drop(redis: Redis, batch: str) -> int:
    """Delete a batch and everything it holds (queued jobs, records, dead letters), so its
    name can hold another run; returns how many lines it had.  Refused while any of its lines
    is running.  The batch hash goes first: from then on no record of the old run can be
    written (its ``run`` no longer matches) and a worker skips the old run's jobs."""
    running = 0
    buckets = await _line_buckets(redis, batch)  # the batch hash goes before the lines
    async for chunk in _line_chunks(redis, batch, buckets):
        async with redis.pipeline(transaction=False) as pipe:
            for _, _, job in chunk:
                pipe.exists(keys.arq_in_progress(job))
            running += sum(await pipe.execute())
    if running:
        raise BatchBusyError(
            f"batch {batch!r} has {running} lines running; wait for them to finish, then run again"
        )
    await redis.delete(keys.batch(batch))
    await redis.zrem(keys.BATCHES, batch)
    lines = 0
    async for chunk in _line_chunks(redis, batch, buckets):
        jobs = [job for _, _, job in chunk]
        lines += len(jobs)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.QUEUE, *jobs)
            pipe.delete(*(keys.arq_job(j) for j in jobs), *(keys.result(j) for j in jobs))
            await pipe.execute()
    await redis.delete(
        keys.batch_lines(batch),
        *(keys.batch_line_bucket(batch, bucket) for bucket in range(buckets)),
        keys.batch_failed(batch),
        keys.batch_stats(batch),
        keys.batch_evaluation(batch),
    )
    return lines


CANCEL_LUA = """
local queue, job_prefix, progress_prefix, result_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local removed = 0
for i = 5, #ARGV do
  local jid = ARGV[i]
  if redis.call('EXISTS', result_prefix .. jid, progress_prefix .. jid) == 0 then
    removed = removed + redis.call('ZREM', queue, jid)
    redis.call('DEL', job_prefix .. jid)
  end
end
return removed
"""


async def cancel(redis: Redis, batch: str) -> int:
    """Take the batch's queued lines off the queue; running and finished ones are kept.

    Returns how many queued lines were removed.  Re-running enqueue for the batch
    resumes it.
    """
    await batch_status(redis, batch)
    await redis.hset(keys.batch(batch), "cancelled", "1")  # type: ignore[misc]
    script = redis.register_script(CANCEL_LUA)
    removed = 0
    async for chunk in _line_chunks(redis, batch):
        args = [keys.QUEUE, keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX, keys.RESULT_PREFIX]
        removed += int(await script(keys=[keys.QUEUE], args=[*args, *(job for _, _, job in chunk)]))
    return removed


REQUEUE_LUA = """
local queue, ttl, score = KEYS[1], ARGV[1], ARGV[2]
local job_prefix, progress_prefix = ARGV[3], ARGV[4]
local queued = 0
for i = 5, #ARGV, 2 do
  local jid, job = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', job_prefix .. jid, progress_prefix .. jid) == 0 then
    redis.call('SET', job_prefix .. jid, job, 'PX', ttl)
    redis.call('ZADD', queue, score, jid)
    queued = queued + 1
  end
end
return queued
"""


async def retry_failed(redis: Redis, batch: str, codes: Collection[str], job_expiry_ms: int) -> int:
    """Queue the batch's failed lines again (only those whose error code is in ``codes``,
    when given).  Their failure records stay until a success replaces them, so counters
    move from failed to succeeded as lines recover.  Returns how many were queued."""
    await batch_status(redis, batch)
    await redis.hdel(keys.batch(batch), "cancelled")  # type: ignore[misc]
    script = redis.register_script(REQUEUE_LUA)
    queued = 0
    cursor = 0
    while True:
        cursor, entries = await redis.hscan(keys.batch_failed(batch), cursor, count=EXPORT_CHUNK)
        chosen = list(entries.items())
        if codes and chosen:
            async with redis.pipeline(transaction=False) as pipe:
                for job_id, _ in chosen:
                    pipe.hget(keys.result(job_id.decode()), "record")
                records = await pipe.execute()
            chosen = [
                entry
                for entry, record in zip(chosen, records, strict=True)
                if record and orjson.loads(record).get("error", {}).get("code") in codes
            ]
        if chosen:
            now = int(time.time() * 1000)
            args: list[Any] = [job_expiry_ms, now, keys.ARQ_JOB_PREFIX, keys.ARQ_IN_PROGRESS_PREFIX]
            for job_id, line in chosen:
                args += [
                    job_id,
                    serialize_job(
                        keys.JOB_FUNCTION, (orjson.loads(line),), {}, None, now, serializer=serialize
                    ),
                ]
            queued += int(await script(keys=[keys.QUEUE], args=args))
        if cursor == 0:
            return queued


async def release_in_progress(redis: Redis, batch: str) -> int:
    """Drop arq's in-progress markers of the batch's jobs, so a new worker runs them at once.

    Only for local mode, when the run that held them is known to be dead (killed or
    interrupted): otherwise they would wait out ``RR_JOB_TIMEOUT + 10 s``.  Returns how many."""
    released = 0
    chunk: list[bytes] = []
    async for key in redis.scan_iter(match=keys.arq_in_progress_of_batch(batch), count=EXPORT_CHUNK):
        chunk.append(key)
        if len(chunk) >= EXPORT_CHUNK:
            released += int(await redis.delete(*chunk))
            chunk = []
    if chunk:
        released += int(await redis.delete(*chunk))
    return released
