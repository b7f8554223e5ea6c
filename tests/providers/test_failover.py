"""Several deployments of one model behind the shared gate: ``Dispatcher.rerank_any`` with a
real ``RedisGate`` (on a fake clock) and one ``httpx.MockTransport`` per deployment host;
fallbacks between model names through ``Reranker``; deferral when nothing can take a line soon."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from jobs import keys
from providers.adapters import cohere
from providers.deployment import Credentials, Deployment, Limits
from providers.dispatcher import Candidate, Dispatcher
from providers.errors import DeferredError, InvalidRequestError, RateLimitedError
from providers.gate import GatePolicy, RedisGate
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import RerankRequest
from tests.adapter_kit import FakeSleep
from tests.fake_clock import Clock

KEY = "failover-key"
REQUEST = RerankRequest(query="solar power", documents=["solar power plants", "coffee"])


def ok(request: httpx.Request) -> httpx.Response:
    body = {
        "id": f"resp-{request.url.host}",
        "results": [{"index": 0, "relevance_score": 0.9}, {"index": 1, "relevance_score": 0.1}],
        "meta": {"billed_units": {"search_units": 1}},
    }
    return httpx.Response(200, json=body)


def error(status: int, retry_after: str | None = None) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return lambda _request: httpx.Response(status, json={"message": f"injected {status}"}, headers=headers)


Handler = Callable[[httpx.Request], httpx.Response]


class Host:
    """One deployment's endpoint: answers with ``script`` in order (the last one repeats)."""

    def __init__(self, *script: Handler) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert json.loads(request.content)["query"] == REQUEST.query
        return self.script[min(len(self.requests), len(self.script)) - 1](request)


def deployment(host: str, model: str = "my-reranker", *, index: int = 0, **limits: Any) -> Deployment:
    return Deployment(
        model=model,
        provider="cohere",
        wire_model="rerank-v3.5",
        credentials=Credentials(api_key=SecretStr(KEY), api_base=f"https://{host}"),
        limits=Limits(**limits),
        name=f"{model}#{index}",
    )


@dataclass
class Rig:
    transport: Dispatcher
    gate: RedisGate
    clock: Clock
    retry_sleeps: FakeSleep

    async def send(self, *deployments: Deployment) -> Any:
        candidates: list[Candidate] = [(cohere.ADAPTER, d) for d in deployments]
        return await self.transport.rerank_any(candidates, REQUEST)

    def with_fallback(self, primary: Deployment, backup: Deployment) -> Reranker:
        """A Reranker whose model ``primary`` falls back to ``backup`` (one deployment each)."""
        return Reranker(
            self.transport, {}, {"primary": [primary], "backup": [backup]}, {"primary": ["backup"]}
        )

    async def wait_for(self, *deployments: Deployment) -> float:
        """How long the gate would hold a line for these deployments now (0.0: free; takes nothing)."""
        probe = RedisGate(self.gate.redis, keys.limiter, GatePolicy(defer_after=0), now_ms=self.clock)
        try:
            lease = await probe.acquire(deployments, 1, 1)
        except DeferredError as exc:
            return exc.delay
        await probe.release(lease, InvalidRequestError("probe", provider="cohere"))
        return 0.0


@asynccontextmanager
async def rig(
    redis: Redis, hosts: Mapping[str, Host], max_attempts: int = 4, **policy: Any
) -> AsyncIterator[Rig]:
    clock, sleeps = Clock(), FakeSleep()
    mounts = {f"https://{name}": httpx.MockTransport(host) for name, host in hosts.items()}
    gate = RedisGate(redis, keys.limiter, GatePolicy(**policy), sleep=clock.sleep, now_ms=clock)
    async with httpx.AsyncClient(mounts=mounts) as client:
        retry = RetryPolicy(max_attempts=max_attempts, sleep=sleeps)
        yield Rig(Dispatcher(client, retry, gate), gate, clock, sleeps)


# --- failover between deployments of one model -------------------------------------------------------


async def test_a_failing_deployment_is_cooled_down_and_every_line_succeeds_on_the_healthy_one(
    redis: Redis,
) -> None:
    broken, healthy = Host(error(503)), Host(ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": broken, "b.example": healthy}, max_attempts=2) as r:
        responses = [await r.send(a, b) for _ in range(20)]
        assert {resp.deployment for resp in responses} == {b.label}
        # a line that met the broken deployment retried at once on the healthy one
        assert r.retry_sleeps.waits == [0.0] * len(broken.requests)
        assert [resp.attempts for resp in responses[: len(broken.requests)]] == [2] * len(broken.requests)
        assert {resp.attempts for resp in responses[len(broken.requests) :]} == {1}
        # after the failure threshold (3 in a row) the broken one gets nothing more
        assert len(broken.requests) == 3
        assert len(healthy.requests) == 20
        assert await r.wait_for(a) == pytest.approx(5.0)  # failure_cooldown
        assert r.clock.sleeps == []  # nobody waited: the healthy one was always free


async def test_concurrent_lines_all_succeed_while_one_deployment_is_down(redis: Redis) -> None:
    broken, healthy = Host(error(500)), Host(ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": broken, "b.example": healthy}, max_attempts=2) as r:
        responses = await asyncio.gather(*(r.send(a, b) for _ in range(30)))
        assert {resp.deployment for resp in responses} == {b.label}
        assert len(healthy.requests) == 30
        # lines already past the gate when the threshold was reached may still have met it,
        # but never more than once each, and the broken one is cooled down now
        assert len(broken.requests) <= 30
        assert await r.wait_for(a) > 4.0
        before = len(broken.requests)
        for _ in range(10):
            assert (await r.send(a, b)).attempts == 1
        assert len(broken.requests) == before


async def test_a_retry_goes_to_a_deployment_that_has_not_failed_the_line(redis: Redis) -> None:
    # neither has a rate limit, so the gate's choice alone would be the first one again
    a_host, b_host = Host(error(503), ok), Host(ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": a_host, "b.example": b_host}) as r:
        response = await r.send(a, b)
        assert (response.deployment, response.attempts) == (b.label, 2)
        assert (len(a_host.requests), len(b_host.requests)) == (1, 1)


async def test_when_every_deployment_failed_the_line_the_retry_may_go_to_any(redis: Redis) -> None:
    a_host, b_host = Host(error(503), ok), Host(error(502), ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": a_host, "b.example": b_host}) as r:
        response = await r.send(a, b)
        assert (response.deployment, response.attempts) == (a.label, 3)
        assert r.retry_sleeps.waits == [0.0, 0.0]


async def test_a_429_with_retry_after_moves_the_retry_to_the_other_deployment_at_once(redis: Redis) -> None:
    throttled, healthy = Host(error(429, "30"), ok), Host(ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": throttled, "b.example": healthy}) as r:
        response = await r.send(a, b)
        assert (response.deployment, response.attempts) == (b.label, 2)
        assert r.retry_sleeps.waits == [0.0]
        assert r.clock.sleeps == []
        # every worker now holds the throttled deployment back for its Retry-After
        assert await r.wait_for(a) == pytest.approx(30.0)
        for _ in range(5):
            assert (await r.send(a, b)).deployment == b.label
        assert len(throttled.requests) == 1
        # once it is over the throttled one is back in use
        r.clock.advance(30_000)
        assert await r.wait_for(a) == 0.0
        used = [(await r.send(a, b)).deployment for _ in range(2)]
        assert a.label in used  # equally loaded deployments take turns


async def test_rate_limits_spread_lines_over_deployments(redis: Redis) -> None:
    a_host, b_host = Host(ok), Host(ok)
    a = deployment("a.example", index=0, rpm=600)
    b = deployment("b.example", index=1, rpm=600)
    async with rig(redis, {"a.example": a_host, "b.example": b_host}) as r:
        for _ in range(40):
            await r.send(a, b)
        # 20/s together: 40 lines in about two seconds, half each
        assert (len(a_host.requests), len(b_host.requests)) == (20, 20)
        assert 1800 <= r.clock.elapsed <= 2000


# --- one deployment alone ----------------------------------------------------------------------------


async def test_alone_a_short_retry_after_is_waited_out_in_the_gate(redis: Redis) -> None:
    host = Host(error(429, "2"), ok)
    a = deployment("a.example")
    async with rig(redis, {"a.example": host}, defer_after=5) as r:
        response = await r.send(a)
        assert response.attempts == 2
        assert r.retry_sleeps.waits == [0.0]  # the policy does not wait it out too
        assert r.clock.sleeps == [2.0]  # the gate does, exactly


async def test_alone_a_long_retry_after_defers_the_line(redis: Redis) -> None:
    host = Host(error(429, "8"), ok)
    a = deployment("a.example")
    async with rig(redis, {"a.example": host}, defer_after=2) as r:
        with pytest.raises(DeferredError) as raised:
            await r.send(a)
        assert raised.value.delay == pytest.approx(8.0)
        assert len(host.requests) == 1
        assert r.clock.sleeps == []
        r.clock.advance(8000)  # when arq runs the line again, it goes at once
        assert (await r.send(a)).attempts == 1


async def test_alone_a_503_backs_off_in_the_policy(redis: Redis) -> None:
    host = Host(error(503, "1.5"), ok)
    a = deployment("a.example")
    async with rig(redis, {"a.example": host}) as r:
        response = await r.send(a)
        assert response.attempts == 2
        assert r.retry_sleeps.waits == [1.5]
        assert r.clock.sleeps == []


async def test_a_cancelled_attempt_gives_its_concurrency_slot_back(redis: Redis) -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return ok(request)

    a = deployment("a.example", max_concurrency=1)
    clock = Clock()
    gate = RedisGate(redis, keys.limiter, GatePolicy(), sleep=clock.sleep, now_ms=clock)
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        transport = Dispatcher(client, RetryPolicy(max_attempts=1), gate)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):  # the line's deadline
                await transport.rerank(cohere.ADAPTER, a, REQUEST)
        assert await redis.zcard(keys.limiter(a.label) + ":leases") == 0
        release.set()
        response = await transport.rerank(cohere.ADAPTER, a, REQUEST)
    assert response.attempts == 1
    assert clock.sleeps == []  # the slot was free at once, not after the lease expired


# --- fallbacks between model names -------------------------------------------------------------------


async def test_a_line_falls_back_to_the_next_model_after_the_primary_retries_fail(redis: Redis) -> None:
    primary_host, backup_host = Host(error(503)), Host(ok)
    primary = deployment("primary.example", "primary")
    backup = deployment("backup.example", "backup")
    async with rig(redis, {"primary.example": primary_host, "backup.example": backup_host}, 3) as r:
        reranker = r.with_fallback(primary, backup)
        response = await reranker.rerank("primary", REQUEST)
        assert response.fallback_from == "primary"
        assert response.deployment == backup.label
        assert response.response_id == "resp-backup.example"
        assert [(x.index, x.relevance_score) for x in response.results] == [(0, 0.9), (1, 0.1)]
        assert len(primary_host.requests) == 3  # every retry of the primary, then the fallback
        assert len(backup_host.requests) == 1
        # a line for the backup itself says nothing about a fallback
        direct = await reranker.rerank("backup", REQUEST)
        assert direct.fallback_from is None


async def test_a_permanent_error_also_falls_back(redis: Redis) -> None:
    primary_host, backup_host = Host(error(400)), Host(ok)
    primary = deployment("primary.example", "primary")
    backup = deployment("backup.example", "backup")
    async with rig(redis, {"primary.example": primary_host, "backup.example": backup_host}) as r:
        reranker = r.with_fallback(primary, backup)
        response = await reranker.rerank("primary", REQUEST)
        assert (response.fallback_from, len(primary_host.requests)) == ("primary", 1)


async def test_when_the_last_fallback_fails_its_error_is_raised(redis: Redis) -> None:
    primary_host, backup_host = Host(error(503)), Host(error(429, "0"))
    primary = deployment("primary.example", "primary")
    backup = deployment("backup.example", "backup")
    async with rig(redis, {"primary.example": primary_host, "backup.example": backup_host}, 2) as r:
        reranker = r.with_fallback(primary, backup)
        with pytest.raises(RateLimitedError):
            await reranker.rerank("primary", REQUEST)
        assert (len(primary_host.requests), len(backup_host.requests)) == (2, 2)


async def test_a_deferred_line_is_neither_retried_nor_sent_to_a_fallback(redis: Redis) -> None:
    primary_host, backup_host = Host(ok), Host(ok)
    primary = deployment("primary.example", "primary", rpm=60)  # one a second
    backup = deployment("backup.example", "backup")
    async with rig(
        redis, {"primary.example": primary_host, "backup.example": backup_host}, defer_after=0.4
    ) as r:
        reranker = r.with_fallback(primary, backup)
        await reranker.rerank("primary", REQUEST)
        with pytest.raises(DeferredError) as raised:
            await reranker.rerank("primary", REQUEST)
        assert raised.value.delay == pytest.approx(0.5)  # one second, less the half request of tolerance
        assert (len(primary_host.requests), len(backup_host.requests)) == (1, 0)
        assert r.retry_sleeps.waits == []


async def test_a_deferred_line_from_a_cool_down_is_not_sent_to_a_fallback(redis: Redis) -> None:
    primary_host, backup_host = Host(error(429, "60")), Host(ok)
    primary = deployment("primary.example", "primary")
    backup = deployment("backup.example", "backup")
    async with rig(redis, {"primary.example": primary_host, "backup.example": backup_host}) as r:
        reranker = r.with_fallback(primary, backup)
        with pytest.raises(DeferredError) as raised:
            await reranker.rerank("primary", REQUEST)
        assert raised.value.delay == pytest.approx(60.0)
        assert (len(primary_host.requests), len(backup_host.requests)) == (1, 0)


async def test_deployments_without_limits_take_turns(redis: Redis) -> None:
    a_host, b_host = Host(ok), Host(ok)
    a, b = deployment("a.example", index=0), deployment("b.example", index=1)
    async with rig(redis, {"a.example": a_host, "b.example": b_host}) as r:
        served = [(await r.send(a, b)).deployment for _ in range(6)]
    assert served.count(a.label) == 3 and served.count(b.label) == 3
