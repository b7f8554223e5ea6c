"""rerank-runner worker: pulls line jobs from Redis and re-ranks them.

Run as many as you like, anywhere that reaches the same Redis:

    REDIS_URL=redis://host:6379/0 python worker.py

Configuration comes from the environment (``RR_*``, provider keys such as
``COHERE_API_KEY``); see the README.  SIGTERM stops taking new lines, lets
in-flight lines finish for ``RR_SHUTDOWN_GRACE`` seconds, and hands the rest back
to the queue.  A worker rides out Redis restarts and dropped connections (it exits 1
after ``RR_REDIS_OUTAGE_SECONDS`` without Redis), renews a heartbeat every
``RR_HEARTBEAT_SECONDS``, and queues again the lines of workers whose heartbeat expired.
(``arq worker.WorkerSettings`` also works, as plain arq: without those guarantees.)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
from arq.connections import RedisSettings
from arq.typing import WorkerCoroutine
from redis.exceptions import RedisError

from jobs import keys
from jobs.liveness import new_worker_id
from jobs.records import RecordWriter
from jobs.resilience import ResilientWorker, resilient_redis_settings
from jobs.serializer import deserialize, serialize
from jobs.settings import RunnerSettings, model_list, provider_credentials
from jobs.work import WorkerState, rerank_line
from providers.deployment import Limits
from providers.dispatcher import Dispatcher
from providers.gate import GatePolicy, RedisGate
from providers.reranker import Reranker
from providers.retry import RetryPolicy


def worker_options(settings: RunnerSettings) -> dict[str, Any]:
    """arq ``Worker`` keyword arguments, shared by ``python worker.py`` and local mode."""
    credentials = provider_credentials()
    models = model_list(settings)
    raw_limits = Limits(settings.default_rpm, settings.default_tpm, settings.default_max_concurrency)
    gate_policy = GatePolicy(burst_requests=settings.limit_burst, defer_after=settings.defer_after)

    async def startup(ctx: dict[str, Any]) -> None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout),
            limits=httpx.Limits(max_connections=settings.max_jobs * 2),
        )
        retry = RetryPolicy(
            max_attempts=settings.retry_attempts, max_total_seconds=settings.retry_max_seconds
        )
        ctx["http_client"] = client
        gate = RedisGate(ctx["redis"], keys.limiter, gate_policy)
        ctx["state"] = WorkerState(
            reranker=Reranker(
                dispatcher=Dispatcher(client, retry, gate),
                credentials=credentials,
                model_list=models.deployments,
                fallbacks=models.fallbacks,
                raw_limits=raw_limits,
            ),
            writer=RecordWriter(ctx["redis"], settings.result_ttl_ms),
            line_deadline=settings.line_deadline,
            max_tries=settings.max_tries,
            job_timeout=settings.job_timeout,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if client := ctx.get("http_client"):
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


def _redis_settings(settings: RunnerSettings) -> RedisSettings:
    if not settings.redis_url:
        raise SystemExit(
            "worker.py needs a Redis: set REDIS_URL (e.g. redis://localhost:6379/0) or pass --redis-url.\n"
            "For a single-machine run, `python enqueue.py FILE` starts Redis and workers itself."
        )
    return resilient_redis_settings(RedisSettings.from_dsn(settings.redis_url))


def worker_settings(settings: RunnerSettings | None = None) -> dict[str, Any]:
    settings = settings or RunnerSettings()
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
        "--max-jobs", type=int, help="lines in flight in this process (default: $RR_MAX_JOBS or 16)"
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
    settings = RunnerSettings(**overrides)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("arq").setLevel(logging.WARNING)
    worker = ResilientWorker(**worker_settings(settings), **resilience_options(settings), burst=args.burst)
    try:
        worker.run()
    except RedisError as exc:
        log = logging.getLogger("rerank_runner.worker")
        log.error("Redis unreachable for %gs (%s); exiting", settings.redis_outage_seconds, exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
