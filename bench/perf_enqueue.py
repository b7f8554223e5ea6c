"""The enqueue figures of ``bench/perf.py``: the ``enqueue.py`` CLI end to end against two anchors
on the same lines and the same Redis (flushed between runs), and Redis bytes per queued line.

* raw: read the file, ``orjson.loads`` each line for its id, and pipeline ``SET arq:job:ID line NX
  PX`` + ``ZADD`` per line, 1,000 lines per round trip (the floor any enqueue pays);
* arq: ``await enqueue_job`` per line (``bench/enqueue_bench.py`` ``baseline``), on the first
  ``arq_lines`` lines only (it is slow; lines/s does not depend on the count).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import orjson
import redis as sync_redis
from redis.asyncio import Redis

from bench.enqueue_bench import baseline, run_cli, write_dataset
from jobs import keys

__all__ = ["EnqueueFigures", "enqueue_figures", "queued_bytes"]

RAW_CHUNK = 1000
EXPIRY_MS = 86_400_000


@dataclass(frozen=True)
class EnqueueFigures:
    line_bytes: float
    cli_lines_per_s: float
    raw_lines_per_s: float
    arq_lines_per_s: float | None


def _flush(url: str) -> int:
    """Empty Redis; the memory it then uses."""
    client = sync_redis.Redis.from_url(url)
    try:
        client.flushall()
        return int(cast(dict[str, int], client.info("memory"))["used_memory"])
    finally:
        client.close()


async def _raw(path: Path, url: str) -> float:
    redis = Redis.from_url(url)
    try:
        started = time.perf_counter()
        with path.open("rb") as handle:
            pipe = redis.pipeline(transaction=False)
            for n, raw in enumerate(handle, 1):
                job = keys.job_id("raw", orjson.loads(raw)["id"])
                pipe.set(keys.ARQ_JOB_PREFIX + job, raw, nx=True, px=EXPIRY_MS)
                pipe.zadd(keys.QUEUE, {job: n})
                if n % RAW_CHUNK == 0:
                    await pipe.execute()
            await pipe.execute()
        return time.perf_counter() - started
    finally:
        await redis.aclose()


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def enqueue_figures(work: Path, url: str, lines: int, docs: int, arq_lines: int) -> EnqueueFigures:
    path = write_dataset(work / f"enqueue-{docs}.jsonl", lines, docs, seed=7)
    line_bytes = path.stat().st_size / lines
    _flush(url)
    cli = run_cli(path, url, "perf-enqueue", work, lines)
    _flush(url)
    raw_seconds = asyncio.run(_raw(path, url))
    arq_rate = None
    if arq_lines:
        head = work / "enqueue-head.jsonl"
        with path.open("rb") as source, head.open("wb") as out:
            for _, raw in zip(range(arq_lines), source, strict=False):
                out.write(raw)
        _flush(url)
        arq_rate = _lines(head) / asyncio.run(baseline(head, url, "perf-arq"))
    _flush(url)
    return EnqueueFigures(line_bytes, lines / cli.child.wall, lines / raw_seconds, arq_rate)


def queued_bytes(work: Path, url: str, lines: int, docs: int) -> tuple[float, float]:
    """(Redis bytes per line queued by ``enqueue.py``, the line's own bytes): ``used_memory``
    after the enqueue minus before, over the lines."""
    path = write_dataset(work / f"bytes-{docs}.jsonl", lines, docs, seed=11)
    before = _flush(url)
    run_cli(path, url, "perf-bytes", work, lines)
    client = sync_redis.Redis.from_url(url)
    try:
        after = int(cast(dict[str, int], client.info("memory"))["used_memory"])
    finally:
        client.close()
    _flush(url)
    return (after - before) / lines, path.stat().st_size / lines
