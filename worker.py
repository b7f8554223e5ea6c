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

It logs a start-up line, a throughput line every ``--summary-seconds`` and, when it stops,
the lines it completed; ``--log-format json`` writes one JSON object per line;
``--metrics-port`` serves Prometheus metrics (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from arq import ArqRedis
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from arq.worker import Worker
from redis.exceptions import RedisError

from jobs import event_loop, keys
from jobs.batches import BatchStatus, batch_status, release_in_progress
from jobs.cache import ScoreCache
from jobs.connection import EXIT_REDIS_UNAVAILABLE, RedisUnavailableError, open_pool, redis_version_problem
from jobs.corpus_stats import StatisticsCache
from jobs.embedded import pid_alive
from jobs.liveness import new_worker_id
from jobs.logs import LOG_FORMATS, Throughput, configure_logging, line_hooks, startup_summary
from jobs.metrics import mark_dead, serve_metrics
from jobs.progress import POLL_SECONDS, wait_for_batch
from jobs.records import RecordWriter
from jobs.redis_url import RedisUrlError, redis_settings
from jobs.resilience import ResilientWorker, resilient_redis_settings
from jobs.serializer import deserialize, serialize
from jobs.settings import RunnerSettings, SettingsError, load_settings, model_list, provider_credentials
from jobs.stats import StatsObserver
from jobs.work import WorkerState, rerank_line
from providers.deployment import Limits
from providers.dispatcher import Dispatcher
from providers.events import Observer, Observers
from providers.gate import GatePolicy, RedisGate
from providers.redaction import Redactor, redact_logs, secret_values
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.transport import http_client

__all__ = [
    "LINES_PER_HTTP_CLIENT",
    "http_clients",
    "local_run",
    "main",
    "resilience_options",
    "run_local_batches",
    "run_local_workers",
    "worker_options",
    "worker_settings",
]


LINES_PER_HTTP_CLIENT = 16
"""On httpcore (``RR_HTTP_TRANSPORT=httpcore``) a worker holds one ``httpx.AsyncClient`` per 16
lines in flight: httpcore scans its whole pool on every request.  aiohttp's pool has no such
scan: one client serves every line.  Either way each line has two connections, all kept alive."""


def http_clients(settings: RunnerSettings) -> list[httpx.AsyncClient]:
    lines = settings.max_jobs if settings.http_transport == "aiohttp" else LINES_PER_HTTP_CLIENT
    count = max(1, math.ceil(settings.max_jobs / lines))
    connections = 2 * math.ceil(settings.max_jobs / count)
    return [http_client(settings.http_transport, settings.http_timeout, connections) for _ in range(count)]


def worker_options(
    settings: RunnerSettings, observers: Sequence[Observer] = (), *, summary_seconds: float = 0
) -> dict[str, Any]:
    """arq ``Worker`` keyword arguments, shared by ``python worker.py`` and local mode.
    ``observers`` hear every event besides the per-deployment stats every worker keeps; with
    ``summary_seconds`` a throughput line is logged that often."""
    stats = StatsObserver(settings.result_ttl_ms)
    throughput = Throughput()
    observer = Observers([stats, *observers, *([throughput] if summary_seconds > 0 else [])])
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
        gate = RedisGate(ctx["redis"], keys.limiter, gate_policy, observer=observer)
        ctx["state"] = WorkerState(
            reranker=Reranker(
                dispatcher=Dispatcher(
                    client,
                    retry,
                    gate,
                    max_response_bytes=settings.max_response_bytes,
                    redactor=redactor,
                    observer=observer,
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
            statistics=StatisticsCache(ctx["redis"]),
            observer=observer,
        )
        ctx["stats_task"] = asyncio.create_task(stats.run(ctx["redis"]))
        if summary_seconds > 0:
            ctx["summary_task"] = asyncio.create_task(throughput.run(summary_seconds))
        if settings.cache_ttl_ms:
            state = ctx["state"]
            state.cache = ScoreCache(ctx["redis"], state.reranker, settings.cache_ttl_ms)

    async def shutdown(ctx: dict[str, Any]) -> None:
        tasks = [task for name in ("stats_task", "summary_task") if (task := ctx.get(name))]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            await stats.flush(ctx["redis"])
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
        **line_hooks(observer),
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
    [status] = await run_local_batches(url, redis, settings, [batch], show=show)
    return status


async def run_local_batches(
    url: str, redis: ArqRedis, settings: RunnerSettings, batches: Sequence[str], *, show: bool
) -> list[BatchStatus]:
    """:func:`run_local_workers` for several batches at once (a bake-off's siblings): one set
    of in-process workers serves them all; each batch's status once all are done."""
    worker = Worker(**worker_options(settings), redis_pool=await open_pool(url), handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        statuses = [await wait_for_batch(redis, batch, show=show) for batch in batches]
        while not all(s.cancelled for s in statuses) and not task.done() and await redis.zcard(keys.QUEUE):
            await asyncio.sleep(POLL_SECONDS)
            statuses = [await batch_status(redis, batch) for batch in batches]
        return statuses
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
    """Fail at start-up with one line (not arq's traceback) when Redis is unreachable, refuses
    or is too old."""
    pool = await open_pool(url)
    try:
        problem = await redis_version_problem(pool)
    finally:
        await pool.aclose()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def worker_settings(
    settings: RunnerSettings | None = None, observers: Sequence[Observer] = (), *, summary_seconds: float = 0
) -> dict[str, Any]:
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return {
        **worker_options(settings, observers, summary_seconds=summary_seconds),
        "redis_settings": _redis_settings(settings),
    }


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
    parser.add_argument("-v", "--verbose", action="store_true", help="log every job (arguments elided)")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="json: one JSON object per log line"
    )
    parser.add_argument(
        "--log-payloads", action="store_true", help="let -v log job arguments (query and document text)"
    )
    parser.add_argument(
        "--summary-seconds", type=float, default=60.0, help="log a throughput line this often (0: never)"
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port ($RR_METRICS_PORT; off)"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.redis_url:
        overrides["redis_url"] = args.redis_url
    if args.max_jobs:
        overrides["max_jobs"] = args.max_jobs
    if args.config:
        overrides["config"] = args.config
    if args.metrics_port:
        overrides["metrics_port"] = args.metrics_port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(log_format=args.log_format, verbose=args.verbose, payloads=args.log_payloads)
    log = logging.getLogger("rerank_runner.worker")
    _redis_settings(settings)
    try:
        event_loop.run(_check_redis(str(settings.redis_url)), settings.event_loop)
    except RedisUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_REDIS_UNAVAILABLE) from None
    try:
        observers = [serve_metrics(settings.metrics_port)] if settings.metrics_port else []
    except OSError as exc:  # the port is taken (outside multiprocess mode) or not ours to bind
        print(f"error: cannot serve metrics on port {settings.metrics_port}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    options = worker_settings(settings, observers, summary_seconds=args.summary_seconds)
    resilience = resilience_options(settings)
    log.info(startup_summary(settings, model_list(settings), resilience["worker_id"]))
    event_loop.install(settings.event_loop)
    worker = ResilientWorker(**options, **resilience, burst=args.burst)
    try:
        worker.run()
    except RedisError as exc:
        log.error("Redis unreachable for %gs (%s); exiting", settings.redis_outage_seconds, exc)
        raise SystemExit(EXIT_REDIS_UNAVAILABLE) from None
    finally:
        mark_dead()
        log.info(
            "worker %s stopped: %d lines completed, %d failed, %d retried",
            resilience["worker_id"], worker.jobs_complete, worker.jobs_failed, worker.jobs_retried,
        )  # fmt: skip


if __name__ == "__main__":
    main()
