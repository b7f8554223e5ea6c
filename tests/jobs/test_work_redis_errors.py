"""The line job when Redis fails (jobs/work.py): the line is handed back, never failed for good,
and an answer already paid for is kept and written once Redis is back."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from arq import ArqRedis, Retry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs import keys
from jobs.queue import register_batch
from jobs.records import RecordWriter, Written
from jobs.resilience import wait_for_redis
from jobs.work import WorkerState, rerank_line
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher
from providers.gate import GatePolicy, Lease, RedisGate
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import RerankRequest, RerankResponse
from tests.support import RUN, unit_line

LINE = unit_line("solar wind", ["solar wind notes", "coffee"])
JOB = keys.job_id("b", "x")


class CountingReranker:
    """The real Reranker (local/bm25), counting calls; ``fail`` makes it raise what the shared
    rate limiter raises when Redis is unreachable."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.inner = Reranker(Dispatcher(client, RetryPolicy()), {})
        self.calls = 0
        self.fail = False

    async def rerank(self, model: str, request: RerankRequest) -> RerankResponse:
        self.calls += 1
        if self.fail:
            raise RedisConnectionError("Connection closed by server.")
        return await self.inner.rerank(model, request)


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    client = Redis(port=port, socket_connect_timeout=0.2)
    yield client
    await client.aclose()


@pytest.fixture
async def reranker() -> AsyncIterator[CountingReranker]:
    async with httpx.AsyncClient() as client:
        yield CountingReranker(client)


def state_for(reranker: CountingReranker, writer: RecordWriter) -> WorkerState:
    return WorkerState(
        reranker=reranker,  # type: ignore[arg-type]
        writer=writer,
        line_deadline=10,
        max_tries=25,
        job_timeout=3.5,  # leaves the record write 1.5 s of retries
    )


async def test_unreachable_redis_at_the_cancel_check_hands_the_line_back(
    redis: ArqRedis, dead_redis: Redis, reranker: CountingReranker
) -> None:
    ctx = {"redis": dead_redis, "state": state_for(reranker, RecordWriter(redis, 0)), "job_try": 1}
    with pytest.raises(Retry):
        await rerank_line(ctx, LINE)
    assert reranker.calls == 0
    assert not await redis.exists(keys.result(JOB))


async def test_the_rate_limiter_failing_hands_the_line_back_not_internal(
    redis: ArqRedis, reranker: CountingReranker
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    reranker.fail = True
    ctx = {"redis": redis, "state": state_for(reranker, RecordWriter(redis, 0)), "job_try": 1}
    with pytest.raises(Retry):
        await rerank_line(ctx, LINE)
    assert not await redis.exists(keys.result(JOB))  # no `internal` record
    assert await redis.hlen(keys.batch_failed("b")) == 0  # type: ignore[misc]


async def test_an_answer_is_kept_while_redis_is_away_and_written_once_back(
    redis: ArqRedis, dead_redis: Redis, reranker: CountingReranker
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    state = state_for(reranker, RecordWriter(dead_redis, 0))
    ctx = {"redis": redis, "state": state, "job_try": 1}
    with pytest.raises(Retry):
        await rerank_line(ctx, LINE)
    assert reranker.calls == 1 and JOB in state.held

    state.writer = RecordWriter(redis, 0)  # Redis is back; arq runs the handed-back line again
    await rerank_line({**ctx, "job_try": 2}, LINE)
    assert reranker.calls == 1  # the provider is not asked twice
    assert state.held == {}
    assert await redis.hget(keys.result(JOB), "status") == b"succeeded"  # type: ignore[misc]

    await rerank_line({**ctx, "job_try": 3}, LINE)  # redelivered after success: nothing to do
    assert reranker.calls == 1


class DroppedOnce(RecordWriter):
    """The record writer of a Redis whose connection drops under the first write (after
    redis-py's own reconnect attempts): the write fails once, then Redis answers."""

    def __init__(self, redis: ArqRedis) -> None:
        super().__init__(redis, 0)
        self.calls = 0

    async def record(self, *args: Any, **kwargs: Any) -> Written:
        self.calls += 1
        if self.calls == 1:
            raise RedisConnectionError("Connection reset by peer")
        return await super().record(*args, **kwargs)


async def test_a_record_write_that_fails_once_is_written_on_its_retry_and_counted_once(
    redis: ArqRedis, reranker: CountingReranker
) -> None:
    await register_batch(redis, "b", RUN, "src", 0)
    writer = DroppedOnce(redis)
    state = state_for(reranker, writer)
    ctx = {"redis": redis, "state": state, "job_try": 1}
    await rerank_line(ctx, LINE)  # no Retry: the second write lands within the job's time
    assert writer.calls == 2 and reranker.calls == 1 and state.held == {}
    assert await redis.hget(keys.result(JOB), "status") == b"succeeded"  # type: ignore[misc]
    assert await redis.hget(keys.batch("b"), "succeeded") == b"1"  # type: ignore[misc]


async def test_releasing_a_gate_slot_without_redis_keeps_the_answer(dead_redis: Redis) -> None:
    gate = RedisGate(dead_redis, keys.limiter, GatePolicy())
    deployment = Deployment(model="m", provider="cohere", wire_model="rerank-v3.5")
    await gate.release(Lease(deployment), None)  # logged, not raised
    with pytest.raises(RedisConnectionError):
        await gate.acquire([deployment], 1, 1)  # before sending: the line is handed back


async def test_waiting_for_redis_backs_off_then_gives_up() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    failures = [RedisConnectionError("refused"), RedisConnectionError("LOADING")]

    async def ping() -> bool:
        if failures:
            raise failures.pop(0)
        return True

    await wait_for_redis(ping, give_up_after=60, sleep=sleep)
    assert slept == [0.1, 0.2]  # exponential

    async def never() -> None:
        raise RedisConnectionError("refused")

    with pytest.raises(RedisConnectionError):
        await wait_for_redis(never, give_up_after=0)
