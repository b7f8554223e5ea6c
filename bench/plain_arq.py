"""The other anchor: the plain arq + httpx worker a user would write in an afternoon.

One job per line (the line itself as the argument), one shared ``httpx.AsyncClient``, the
Cohere-wire answer parsed and returned (arq keeps it as the job's result); no limits, no
liveness, no result bookkeeping of its own.  ``bench/perf.py`` enqueues with
:func:`enqueue` and runs ``python -m arq bench.plain_arq.WorkerSettings`` processes with
``PLAIN_REDIS_URL``, ``PLAIN_API_BASE`` and ``PLAIN_MAX_JOBS`` set.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import httpx
from arq import ArqRedis
from arq.connections import RedisSettings

__all__ = ["QUEUE", "WorkerSettings", "enqueue", "rerank"]

QUEUE = "plain:queue"


async def rerank(ctx: dict[str, Any], line: dict[str, Any]) -> list[Any]:
    client: httpx.AsyncClient = ctx["client"]
    body = {"model": "rerank-v3.5", "query": line["query"], "documents": line["documents"]}
    response = await client.post(
        f"{os.environ['PLAIN_API_BASE']}/v2/rerank",
        json=body,
        headers={"authorization": f"Bearer {os.environ.get('PLAIN_API_KEY', 'bench-mock-key')}"},
    )
    response.raise_for_status()
    results: list[Any] = response.json()["results"]
    return results


async def startup(ctx: dict[str, Any]) -> None:
    ctx["client"] = httpx.AsyncClient(timeout=60)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["client"].aclose()


async def enqueue(redis: ArqRedis, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        await redis.enqueue_job("rerank", line, _job_id=f"plain:{line['id']}", _queue_name=QUEUE)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [rerank]
    on_startup = startup
    on_shutdown = shutdown
    queue_name = QUEUE
    redis_settings = RedisSettings.from_dsn(os.environ.get("PLAIN_REDIS_URL", "redis://127.0.0.1:6379/0"))
    max_jobs = int(os.environ.get("PLAIN_MAX_JOBS", "64"))
    poll_delay = 0.05
