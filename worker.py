"""rerank-runner worker: pulls line jobs from Redis and re-ranks them.

Run as many as you like, anywhere that reaches the same Redis:

    REDIS_URL=redis://host:6379/0 python worker.py

Configuration comes from the environment (``RR_*``, provider keys such as
``COHERE_API_KEY``); see the README.  SIGTERM stops taking new lines, lets
in-flight lines finish for ``RR_SHUTDOWN_GRACE`` seconds, and hands the rest back
to the queue.  A worker rides out Redis restarts and dropped connections (it exits 4
after ``RR_REDIS_OUTAGE_SECONDS`` without Redis), renews a heartbeat every
``RR_HEARTBEAT_SECONDS``, and queues again the lines of workers whose heartbeat expired.
(``arq worker.WorkerSettings`` also works, as plain arq: without those guarantees.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from arq import ArqRedis
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from arq.worker import Worker
from redis.exceptions import RedisError

from jobs import keys
from jobs.batches import BatchStatus, batch_status, release_in_progress
from jobs.cache import ScoreCache
from jobs.connection import EXIT_REDIS_UNAVAILABLE, RedisUnavailableError, open_pool
from jobs.embedded import pid_alive
from jobs.liveness import new_worker_id
from jobs.progress import POLL_SECONDS, wait_for_batch
from jobs.records import RecordWriter
from jobs.redis_url import RedisUrlError, redis_settings
from jobs.resilience import ResilientWorker, resilient_redis_settings
from jobs.serializer import deserialize, serialize
from jobs.settings import RunnerSettings, SettingsError, load_settings, model_list, provider_credentials
from jobs.work import WorkerState, rerank_line
from providers.deployment import Limits
from providers.dispatcher import Dispatcher
from providers.gate import GatePolicy, RedisGate
from providers.redaction import Redactor, redact_logs, secret_values
from providers.reranker import Reranker
from providers.retry import RetryPolicy

__all__ = [
    "LINES_PER_HTTP_CLIENT",
    "http_clients",
    "local_run",
    "main",
    "resilience_options",
    "run_local_workers",
    "worker_options",
    "worker_settings",
]


LINES_PER_HTTP_CLIENT = 16
"""httpcore scans its whole connection pool on every request, in time quadratic in its idle
connections: a worker holds one ``httpx.AsyncClient`` per 16 lines in flight, each with two
connections per line, all kept alive (httpx keeps 20 by default; a request beyond them opened a
new connection).  Measured in docs/performance.md."""


def http_clients(settings: RunnerSettings) -> list[httpx.AsyncClient]:
    count = max(1, math.ceil(settings.max_jobs / LINES_PER_HTTP_CLIENT))
    connections = 2 * math.ceil(settings.max_jobs / count)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(settings.http_timeout)
    return [httpx.AsyncClient(timeout=timeout, limits=limits) for _ in range(count)]


def worker_options(settings: RunnerSettings) -> dict[str, Any]:
    """arq ``Worker`` keyword arguments, shared by ``python worker.py`` and local mode."""
    credentials = provider_credentials()
    models = model_list(settings)
    raw_limits = Limits(settings.default_rpm, settings.default_tpm, settings.default_max_concurrency)
    gate_policy = GatePolicy(burst_requests=settings.limit_burst, defer_after=settings.defer_after)
    deployments = [d for entries in models.deployments.values() for d in entries]
    redactor = Redactor(secret_values(credentials.values(), deployments))

    async def startup(ctx: dict[str, Any]) -> None:
        redact_logs(redactor)
        clients = http_clients(settings)
        client = clients[0]
        retry = RetryPolicy(
            max_attempts=settings.retry_attempts, max_total_seconds=settings.retry_max_seconds
        )
        ctx["http_clients"] = clients
        gate = RedisGate(ctx["redis"], keys.limiter, gate_policy)
        ctx["state"] = WorkerState(
            reranker=Reranker(
                dispatcher=Dispatcher(
                    client,
                    retry,
                    gate,
                    max_response_bytes=settings.max_response_bytes,
                    redactor=redactor,
                    more_clients=clients[1:],
                ),
                credentials=credentials,
                model_list=models.deployments,
                fallbacks=models.fallbacks,
                raw_limits=raw_limits,
                unavailable=models.unavailable,
            ),
            writer=RecordWriter(ctx["redis"], settings.result_ttl_ms),
            line_deadline=settings.line_deadline,
            max_tries=settings.max_tries,
            redactor=redactor,
            job_timeout=settings.job_timeout,
        )
        if settings.cache_ttl_ms:
            state = ctx["state"]
            state.cache = ScoreCache(ctx["redis"], state.reranker, settings.cache_ttl_ms)

    async def shutdown(ctx: dict[str, Any]) -> None:
        for client in ctx.get("http_clients", ()):
            await client.aclose()

    functions: list[WorkerCoroutine] = [rerank_line]
    return {
        "functions": functions,
        "queue_name": keys.QUEUE,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "job_timeout": settings.job_timeout,
        "keep_result": 0,
        "max_jobs": settings.max_jobs,
        "max_tries": settings.max_tries,
        "poll_delay": settings.poll_delay,
        "job_completion_wait": settings.shutdown_grace,
        "expires_extra_ms": settings.job_expiry_ms,
        "health_check_interval": 30,
    }


@contextlib.asynccontextmanager
async def local_run(redis: ArqRedis, batch: str) -> AsyncIterator[None]:
    """Marks this process as the one running ``batch`` locally (``local_pid`` in the batch hash),
    so ``batch.py status`` can tell a run in progress from one that was killed or interrupted.

    When no live local run holds the batch, the lines a killed run had in flight are released
    to run again now, not when arq's in-progress markers expire."""
    previous = await redis.hget(keys.batch(batch), "local_pid")  # type: ignore[misc]
    if not (previous and pid_alive(int(previous))):
        await release_in_progress(redis, batch)
    await redis.hset(keys.batch(batch), "local_pid", str(os.getpid()))  # type: ignore[misc]
    try:
        yield
    finally:
        with contextlib.suppress(RedisError):  # left behind, it names a dead process: "interrupted"
            await redis.hdel(keys.batch(batch), "local_pid")  # type: ignore[misc]


async def run_local_workers(
    url: str, redis: ArqRedis, settings: RunnerSettings, batch: str, *, show: bool
) -> BatchStatus:
    """Local mode: run workers in this process until every line of ``batch`` has a record and
    the queue is empty (lines queued again by ``retry-failed`` run too), then stop them."""
    worker = Worker(**worker_options(settings), redis_pool=await open_pool(url), handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        status = await wait_for_batch(redis, batch, show=show)
        while not status.cancelled and not task.done() and await redis.zcard(keys.QUEUE):
            await asyncio.sleep(POLL_SECONDS)
            status = await batch_status(redis, batch)
        return status
    finally:
        await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _redis_settings(settings: RunnerSettings) -> RedisSettings:
    if not settings.redis_url:
        raise SystemExit(
            "worker.py needs a Redis: set REDIS_URL (e.g. redis://localhost:6379/0) or pass --redis-url.\n"
            "For a single-machine run, `python enqueue.py FILE` starts Redis and workers itself."
        )
    try:
        return resilient_redis_settings(redis_settings(settings.redis_url))
    except RedisUrlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _check_redis(url: str) -> None:
    """Fail at start-up with one line (not arq's traceback) when Redis is unreachable or refuses."""
    pool = await open_pool(url)
    await pool.aclose()


def worker_settings(settings: RunnerSettings | None = None) -> dict[str, Any]:
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return {**worker_options(settings), "redis_settings": _redis_settings(settings)}


def resilience_options(settings: RunnerSettings) -> dict[str, Any]:
    """:class:`ResilientWorker`'s own keyword arguments (liveness and outage tolerance)."""
    return {
        "heartbeat_seconds": settings.heartbeat_seconds,
        "worker_ttl_seconds": settings.worker_ttl_seconds,
        "redis_outage_seconds": settings.redis_outage_seconds,
        "worker_id": new_worker_id(),
    }


def __getattr__(name: str) -> Any:
    # ``arq worker.WorkerSettings`` looks this name up; building it lazily keeps
    # ``import worker`` free of environment reads.
    if name == "WorkerSettings":
        return worker_settings()
    raise AttributeError(name)


def main(argv: list[str] | None = None, prog: str = "python worker.py") -> None:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redis-url", help="Redis to work for (default: $REDIS_URL)")
    parser.add_argument(
        "--max-jobs", type=int, help="lines in flight in this process (default: $RR_MAX_JOBS or 64)"
    )
    parser.add_argument(
        "--config", type=Path, help="LiteLLM-style config.yaml with a model_list ($RR_CONFIG)"
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every job")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.max_jobs:
        overrides["max_jobs"] = args.max_jobs
    if args.config:
        overrides["config"] = args.config
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("arq").setLevel(logging.WARNING)
    options = worker_settings(settings)
    try:
        asyncio.run(_check_redis(str(settings.redis_url)))
    except RedisUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_REDIS_UNAVAILABLE) from None
    worker = ResilientWorker(**options, **resilience_options(settings), burst=args.burst)
    try:
        worker.run()
    except RedisError as exc:
        log = logging.getLogger("rerank_runner.worker")
        log.error("Redis unreachable for %gs (%s); exiting", settings.redis_outage_seconds, exc)
        raise SystemExit(EXIT_REDIS_UNAVAILABLE) from None


if __name__ == "__main__":
    main()
