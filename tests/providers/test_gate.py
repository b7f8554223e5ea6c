"""The shared rate limiter (providers/gate.py) against a real redis-server, on a fake clock.

Every ``RedisGate`` here reads the time from a :class:`Clock` (``now_ms=``) and sleeps
through it (``sleep=``): a wait moves the clock by exactly that long and returns at once,
so admission times are exact to the millisecond.  Two gates over one Redis stand for two
workers.  A "probe" gate with ``defer_after=0`` answers, without taking anything, how long
a deployment would make a line wait (``DeferredError.delay``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from jobs import keys
from providers.deployment import Deployment, Limits
from providers.errors import (
    DeferredError,
    InvalidRequestError,
    ProviderTimeoutError,
    RateLimitedError,
    RerankError,
    ServerError,
)
from providers.gate import GatePolicy, Lease, RedisGate, estimate_tokens
from providers.retry import RetryPolicy
from providers.types import RerankRequest
from tests.fake_clock import Clock
from tests.support import command_calls


def deployment(
    name: str, rpm: int | None = None, tpm: int | None = None, conc: int | None = None
) -> Deployment:
    return Deployment(
        model="reranker",
        provider="cohere",
        wire_model=f"rerank-{name}",
        limits=Limits(rpm=rpm, tpm=tpm, max_concurrency=conc),
        name=name,
    )


def gate(redis: Redis, clock: Clock, **policy: Any) -> RedisGate:
    """A gate on the fake clock; one request of burst unless said otherwise (round numbers)."""
    policy = {"burst_requests": 1.0, **policy}
    return RedisGate(redis, keys.limiter, GatePolicy(**policy), sleep=clock.sleep, now_ms=clock)


async def wait_for(redis: Redis, clock: Clock, deployments: Sequence[Deployment], tokens: int = 1) -> float:
    """How long an acquire would wait now.  When it would wait, nothing is taken; when it is
    free (0.0) the probe is admitted and its lease given back with an outcome that neither
    counts as a failure nor resets a failure streak."""
    probe = gate(redis, clock, defer_after=0)
    try:
        lease = await probe.acquire(deployments, 1, tokens)
    except DeferredError as exc:
        return exc.delay
    await probe.release(lease, RerankError("probe"))
    return 0.0


async def admissions(g: RedisGate, clock: Clock, deployments: Sequence[Deployment], n: int, tokens: int = 1
                     ) -> list[tuple[int, str]]:  # fmt: skip
    """Acquire ``n`` times in a row: (fake time since start, deployment label) of each admission."""
    taken = []
    for _ in range(n):
        lease = await g.acquire(deployments, 1, tokens)
        taken.append((clock.elapsed, lease.deployment.label))
        await g.release(lease, None)
    return taken


# --- requests per minute -----------------------------------------------------------------------------


async def test_rpm_paces_one_admission_per_interval_after_one_request_of_burst(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)  # 10/s: one every 100 ms
    taken = await admissions(gate(redis, clock), clock, [a], 10)
    # one request of burst on top of the steady pace, then exactly one per 100 ms
    assert [t for t, _ in taken] == [0, 0, 100, 200, 300, 400, 500, 600, 700, 800]
    assert clock.elapsed == 800
    assert sum(clock.sleeps) == pytest.approx(0.8)


async def test_rpm_without_burst_is_strictly_one_per_interval(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)
    taken = await admissions(gate(redis, clock, burst_requests=0), clock, [a], 10)
    assert [t for t, _ in taken] == [n * 100 for n in range(10)]


async def test_no_admission_a_millisecond_early(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)
    await admissions(gate(redis, clock), clock, [a], 2)  # the burst is spent
    clock.advance(99)
    assert await wait_for(redis, clock, [a]) == pytest.approx(0.001)
    clock.advance(1)
    assert await wait_for(redis, clock, [a]) == 0.0


async def test_an_idle_deployment_gets_its_burst_back(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)
    g = gate(redis, clock)
    await admissions(g, clock, [a], 5)  # up to 300 ms
    clock.advance(10_000)
    start = clock.elapsed
    taken = await admissions(g, clock, [a], 3)
    assert [t - start for t, _ in taken] == [0, 0, 100]


async def test_two_workers_share_one_pace(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)
    one, two = gate(redis, clock), gate(redis, clock)
    times = []
    for n in range(8):
        lease = await (one if n % 2 else two).acquire([a], 1, 1)
        times.append(clock.elapsed)
        await (one if n % 2 else two).release(lease, None)
    assert times == [0, 0, 100, 200, 300, 400, 500, 600]


async def test_a_line_split_into_several_requests_pays_for_each(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600)
    g = gate(redis, clock, burst_requests=0)
    big = await g.acquire([a], 3, 1)  # a line the endpoint takes in three requests
    await g.release(big, None)
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, None)
    assert clock.elapsed == 300


# --- tokens per minute -------------------------------------------------------------------------------


async def test_tpm_paces_by_token_cost(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", tpm=6000)  # 100 tokens/s: 10 ms per token
    g = gate(redis, clock, burst_requests=0)
    times = []
    for cost in (50, 10, 30, 1):
        lease = await g.acquire([a], 1, cost)
        times.append(clock.elapsed)
        await g.release(lease, None)
    # each admission waits for the tokens already sent: 50 -> 500 ms, 10 -> 100 ms, 30 -> 300 ms
    assert times == [0, 500, 600, 900]


async def test_tpm_burst_is_one_request_of_this_size(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", tpm=6000)
    taken = await admissions(gate(redis, clock), clock, [a], 4, tokens=50)
    assert [t for t, _ in taken] == [0, 0, 500, 1000]


async def test_rpm_and_tpm_together_wait_for_the_slower(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=600, tpm=6000)  # 100 ms per request, 10 ms per token
    g = gate(redis, clock, burst_requests=0)
    small = await admissions(g, clock, [a], 3, tokens=2)  # 20 ms of tokens: the rpm rules
    assert [t for t, _ in small] == [0, 100, 200]
    start = clock.elapsed
    large = await admissions(g, clock, [a], 3, tokens=40)  # 400 ms of tokens: the tpm rules
    assert [t - start for t, _ in large] == [100, 500, 900]


# --- concurrency -------------------------------------------------------------------------------------


async def test_max_concurrency_holds_the_third_until_a_lease_is_released(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", conc=2)
    one, two = gate(redis, clock), gate(redis, clock)
    first = await one.acquire([a], 1, 1)
    second = await two.acquire([a], 1, 1)
    third = asyncio.create_task(one.acquire([a], 1, 1))
    for _ in range(5000):  # it polls, and gets nothing while both slots are held
        if len(clock.sleeps) >= 5:
            break
        await asyncio.sleep(0.001)
    assert not third.done()
    assert set(clock.sleeps) == {0.05}
    await two.release(second, None)
    lease = await asyncio.wait_for(third, 5)
    assert lease.deployment == a
    assert await redis.zcard(keys.limiter("a") + ":leases") == 2
    await one.release(first, None)
    await one.release(lease, None)
    assert await redis.zcard(keys.limiter("a") + ":leases") == 0


async def test_a_failed_attempt_also_frees_its_slot(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", conc=1)
    g = gate(redis, clock)
    for error in (ServerError("x", provider="cohere"), InvalidRequestError("x", provider="cohere"), None):
        lease = await g.acquire([a], 1, 1)
        await g.release(lease, error)
    assert clock.sleeps == []


async def test_lease_expiry_frees_a_slot_held_by_a_dead_worker(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", conc=1)
    dead = gate(redis, clock, lease_seconds=30)
    await dead.acquire([a], 1, 1)  # never released: the worker died
    assert await wait_for(redis, clock, [a]) == pytest.approx(0.05)  # at the cap: poll again
    clock.advance(29_999)
    assert await wait_for(redis, clock, [a]) == pytest.approx(0.05)
    clock.advance(1)
    alive = gate(redis, clock, lease_seconds=30)
    lease = await alive.acquire([a], 1, 1)
    assert clock.sleeps == []
    assert lease.deployment == a


# --- cool-downs --------------------------------------------------------------------------------------


def throttled(retry_after: float | None) -> RateLimitedError:
    return RateLimitedError("slow down", provider="cohere", status=429, retry_after=retry_after)


def failure() -> ServerError:
    return ServerError("unavailable", provider="cohere", status=503)


@pytest.mark.parametrize(("retry_after", "cool_ms"), [(2.5, 2500), (None, 1000), (0.2, 200)])
async def test_429_cools_the_deployment_for_every_worker(
    redis: Redis, retry_after: float | None, cool_ms: int
) -> None:
    clock = Clock()
    a = deployment("a")  # no rate limit: only the cool-down can hold it back
    one, two = gate(redis, clock), gate(redis, clock)
    lease = await one.acquire([a], 1, 1)
    await one.release(lease, throttled(retry_after))
    assert await wait_for(redis, clock, [a]) == pytest.approx(cool_ms / 1000)
    # the other worker waits exactly that long, then goes
    lease = await two.acquire([a], 1, 1)
    assert clock.elapsed == cool_ms
    assert clock.sleeps == [cool_ms / 1000]
    await two.release(lease, None)
    lease = await one.acquire([a], 1, 1)
    assert clock.elapsed == cool_ms  # over: nothing left to wait


async def test_retry_after_zero_does_not_cool(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    g = gate(redis, clock)
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, throttled(0))
    await g.acquire([a], 1, 1)
    assert clock.sleeps == []


async def test_a_shorter_429_does_not_cut_a_longer_cool_down(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    one, two = gate(redis, clock, defer_after=10), gate(redis, clock, defer_after=10)
    first, second, third = [await g.acquire([a], 1, 1) for g in (one, two, one)]
    await one.release(first, throttled(5))
    clock.advance(1000)
    await two.release(second, throttled(1))
    assert await wait_for(redis, clock, [a]) == pytest.approx(4.0)
    await one.release(third, throttled(6))  # a longer one extends it
    assert await wait_for(redis, clock, [a]) == pytest.approx(6.0)
    await two.acquire([a], 1, 1)
    assert clock.elapsed == 7000


async def test_three_failures_in_a_row_cool_the_deployment(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    one, two = gate(redis, clock, failure_cooldown=5), gate(redis, clock, failure_cooldown=5)
    for n, g in enumerate((one, two, one)):
        assert await wait_for(redis, clock, [a]) == 0.0, f"cooled after {n} failures"
        lease = await g.acquire([a], 1, 1)
        error: RerankError = failure() if n != 1 else ProviderTimeoutError("slow", provider="cohere")
        await g.release(lease, error)
    assert await wait_for(redis, clock, [a]) == pytest.approx(5.0)
    await two.acquire([a], 1, 1)
    assert clock.elapsed == 5000


async def test_a_success_resets_the_failure_streak(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    g = gate(redis, clock)
    for error in (failure(), failure(), None, failure(), failure(), None, failure(), failure()):
        lease = await g.acquire([a], 1, 1)
        await g.release(lease, error)
    assert clock.sleeps == []
    assert await wait_for(redis, clock, [a]) == 0.0


async def test_permanent_errors_do_not_cool(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    g = gate(redis, clock)
    for _ in range(5):
        lease = await g.acquire([a], 1, 1)
        await g.release(lease, InvalidRequestError("bad line", provider="cohere", status=400))
    assert clock.sleeps == []


async def test_without_limits_a_success_leaves_nothing_in_redis(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    g = gate(redis, clock)
    for _ in range(4):
        lease = await g.acquire([a, b], 1, 1)
        assert not lease.settle
        await g.release(lease, None)
    assert await redis.keys("*") == []
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, failure())
    lease = await g.acquire([a], 1, 1)
    assert lease.settle  # this success ends a failure streak: it is reported
    await g.release(lease, None)
    assert await redis.keys("*") == []


async def gate_commands(redis: Redis, g: RedisGate, a: Deployment, lines: int) -> dict[str, int]:
    """The Redis commands ``lines`` successful lines cost the gate (scripts loaded beforehand;
    on the fake clock, so without the ``TIME`` each script runs in production)."""
    await g.release(await g.acquire([a], 1, 1), None)
    await redis.config_resetstat()
    for _ in range(lines):
        await g.release(await g.acquire([a], 1, 1), None)
    return await command_calls(redis)


async def test_an_rpm_limited_success_runs_one_script_and_no_release(redis: Redis) -> None:
    commands = await gate_commands(redis, gate(redis, Clock()), deployment("a", rpm=6_000_000), 10)
    assert commands == {"evalsha": 10, "mget": 10, "set": 10}


async def test_a_concurrency_limited_success_gives_its_slot_back_with_one_zrem(redis: Redis) -> None:
    commands = await gate_commands(redis, gate(redis, Clock()), deployment("a", conc=4), 10)
    per_line = {"evalsha", "mget", "zremrangebyscore", "zcard", "zadd", "pexpire", "zrem"}
    assert commands == dict.fromkeys(per_line, 10)
    assert await redis.zcard(keys.limiter("a") + ":leases") == 0


@pytest.mark.parametrize("limits", [{"rpm": 6_000_000}, {"tpm": 6_000_000}, {"conc": 2}])
async def test_with_limits_a_success_still_ends_a_failure_streak(redis: Redis, limits: dict[str, int]
                                                                 ) -> None:  # fmt: skip
    clock = Clock()
    a = deployment("a", **limits)
    one, two = gate(redis, clock), gate(redis, clock)
    streak = False
    for g, error in zip([one, two] * 4, (failure(), failure(), None, failure(), failure(), None, failure()),
                        strict=False):  # fmt: skip
        lease = await g.acquire([a], 1, 1)
        assert lease.settle == streak  # a success reports itself only when it ends a streak
        await g.release(lease, error)
        streak = error is not None
    assert await redis.get(keys.limiter("a") + ":cool") is None
    assert await redis.zcard(keys.limiter("a") + ":leases") == 0
    for _ in range(2):  # the streak the last failure started goes on: its third cools
        await one.release(await one.acquire([a], 1, 1), failure())
    assert await redis.get(keys.limiter("a") + ":cool") is not None


async def test_without_limits_another_workers_cool_down_is_honoured_within_open_refresh(
    redis: Redis,
) -> None:
    clock = Clock()
    a = deployment("a")
    one, two = gate(redis, clock, open_refresh=0.1), gate(redis, clock)
    await one.release(await one.acquire([a], 1, 1), None)
    await two.release(await two.acquire([a], 1, 1), throttled(2))
    await one.acquire([a], 1, 1)  # its read of 0 ms ago still serves (the documented lag)
    assert clock.sleeps == []
    clock.advance(100)
    await one.acquire([a], 1, 1)  # read again: the rest of the cool-down is waited out
    assert clock.sleeps == [1.9]
    lease = await one.acquire([a], 1, 1)
    await one.release(lease, throttled(1))  # its own 429: the next line waits at once
    await one.acquire([a], 1, 1)
    assert clock.sleeps == [1.9, 1.0]


async def test_without_limits_lines_arriving_together_share_one_read(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    g = gate(redis, clock)
    await redis.config_resetstat()
    leases = await asyncio.gather(*(g.acquire([a, b], 1, 1) for _ in range(16)))
    stats = await redis.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 2  # one read: cool-down and failure streak per deployment
    assert Counter(lease.deployment.label for lease in leases) == {"a": 8, "b": 8}  # turns
    clock.advance(100)
    await g.acquire([b, a], 1, 1)
    assert (await redis.info("commandstats"))["cmdstat_mget"]["calls"] == 4  # stale: read again


async def test_without_limits_a_long_cool_down_defers_the_line(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b")
    g = gate(redis, clock, defer_after=2)
    for d in (a, b):
        lease = await g.acquire([d], 1, 1)
        await g.release(lease, throttled(30 if d is a else 10))
    with pytest.raises(DeferredError) as raised:
        await g.acquire([a, b], 1, 1)
    assert raised.value.delay == pytest.approx(10.0)
    assert clock.sleeps == []


# --- choosing among deployments ----------------------------------------------------------------------


async def test_traffic_splits_by_free_capacity(redis: Redis) -> None:
    clock = Clock()
    slow, fast = deployment("slow", rpm=600), deployment("fast", rpm=1800)  # 10/s and 30/s
    one, two = gate(redis, clock), gate(redis, clock)
    counts: Counter[str] = Counter()
    for n in range(400):
        g = one if n % 2 else two
        lease = await g.acquire([slow, fast], 1, 1)
        counts[lease.deployment.label] += 1
        await g.release(lease, None)
    # 400 admissions at 40/s take about 10 s: about 100 on the slow one, 300 on the fast one
    assert 10_000 - 200 <= clock.elapsed <= 10_000 + 200
    assert 95 <= counts["slow"] <= 105
    assert counts["slow"] + counts["fast"] == 400


async def test_a_cooling_deployment_gets_nothing_while_another_is_free(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a", rpm=600), deployment("b", rpm=600)
    g = gate(redis, clock)
    lease = await g.acquire([a, b], 1, 1)
    assert lease.deployment == a  # equal load: the first candidate
    await g.release(lease, throttled(10))
    taken = await admissions(g, clock, [a, b], 30)
    assert {label for _, label in taken} == {"b"}
    assert clock.elapsed < 10_000
    # once the cool-down is over, both serve again
    clock.advance(10_000 - clock.elapsed)
    taken = await admissions(g, clock, [a, b], 20)
    assert Counter(label for _, label in taken)["a"] >= 8


async def test_a_line_goes_to_whichever_deployment_frees_first(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b", rpm=60)  # b: one a second
    g = gate(redis, clock, burst_requests=0)
    lease = await g.acquire([a, b], 1, 1)
    await g.release(lease, throttled(3))  # a cools 3 s
    lease = await g.acquire([a, b], 1, 1)
    assert (lease.deployment, clock.elapsed) == (b, 0)
    await g.release(lease, None)
    lease = await g.acquire([a, b], 1, 1)  # a in 3 s, b in 1 s
    assert (lease.deployment, clock.elapsed) == (b, 1000)


# --- deferral ----------------------------------------------------------------------------------------


async def test_a_wait_longer_than_defer_after_raises_deferred(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a", rpm=60)  # one a second
    g = gate(redis, clock, burst_requests=0, defer_after=0.5)
    await g.acquire([a], 1, 1)
    with pytest.raises(DeferredError) as raised:
        await g.acquire([a], 1, 1)
    assert raised.value.delay == pytest.approx(1.0)
    assert raised.value.code == "deferred"
    assert not raised.value.retryable
    assert raised.value.message.startswith("a: no capacity for 1.0s")
    assert clock.sleeps == []
    # a deferral takes nothing: a second later the line goes at once
    clock.advance(1000)
    await g.acquire([a], 1, 1)
    assert clock.sleeps == []


async def test_deferral_reports_the_shortest_wait_of_all_candidates(redis: Redis) -> None:
    clock = Clock()
    a, b = deployment("a"), deployment("b", rpm=60)
    g = gate(redis, clock, burst_requests=0, defer_after=0.5)
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, throttled(30))
    await g.acquire([b], 1, 1)
    with pytest.raises(DeferredError) as raised:
        await g.acquire([a, b], 1, 1)
    assert raised.value.delay == pytest.approx(1.0)


async def test_a_wait_up_to_defer_after_is_waited_out(redis: Redis) -> None:
    clock = Clock()
    a = deployment("a")
    g = gate(redis, clock, defer_after=2)
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, throttled(2))
    await g.acquire([a], 1, 1)
    assert clock.sleeps == [2.0]
    lease = await g.acquire([a], 1, 1)
    await g.release(lease, throttled(2.5))
    with pytest.raises(DeferredError) as raised:
        await g.acquire([a], 1, 1)
    assert raised.value.delay == pytest.approx(2.5)
    assert clock.sleeps == [2.0]


# --- token estimate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "tokens"),
    [
        (RerankRequest(query="abcd", documents=["abcdefgh"]), 3),  # (4 + 8) / 4
        (RerankRequest(query="abcd", documents=["abcdefgh", "a"]), 5),  # ceil((12 + 5) / 4)
        (RerankRequest(query="q", documents=[""]), 1),  # never less than one
        # objects count as the text the ranker sees: "title: ab\ntext: cd" (18 chars) + 2
        (RerankRequest(query="ab", documents=[{"id": "x", "title": "ab", "text": "cd"}]), 5),
        (RerankRequest(query="ab", documents=[{"title": "ab", "text": "cdef"}], rank_fields=["text"]), 2),
    ],
)
def test_estimate_tokens(request_: RerankRequest, tokens: int) -> None:
    assert estimate_tokens(request_) == tokens


def test_estimate_tokens_scales_with_documents() -> None:
    documents = ["x" * 400] * 10
    assert estimate_tokens(RerankRequest(query="y" * 40, documents=documents)) == 10 * 440 // 4


# --- the retry policy's waits ------------------------------------------------------------------------


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def retried(error: RerankError, **options: bool) -> tuple[list[float], int]:
    sleeps = Sleeps()
    outcomes: list[RerankError | None] = [error, error, None]

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "ok"

    result, attempts = await RetryPolicy(max_attempts=5, sleep=sleeps).call(attempt, **options)
    assert result == "ok"
    return sleeps.waits, attempts


async def test_failover_retries_at_once() -> None:
    assert await retried(throttled(7), failover=True) == ([0.0, 0.0], 3)
    assert await retried(failure(), failover=True) == ([0.0, 0.0], 3)


async def test_alone_the_policy_honours_retry_after() -> None:
    assert await retried(throttled(7)) == ([7.0, 7.0], 3)
    assert await retried(ServerError("x", provider="cohere", retry_after=1.5)) == ([1.5, 1.5], 3)


async def test_alone_without_retry_after_it_backs_off_with_jitter() -> None:
    waits, attempts = await retried(failure())
    assert attempts == 3
    assert 0 <= waits[0] <= 0.5 and 0 <= waits[1] <= 1.0


async def test_a_cooling_gate_waits_out_a_429_instead_of_the_policy() -> None:
    # the gate holds the deployment back for its Retry-After (or defers the line), so the
    # policy does not sleep on it too; other errors keep their own waits
    assert await retried(throttled(7), gate_cools=True) == ([0.0, 0.0], 3)
    assert await retried(ServerError("x", provider="cohere", retry_after=1.5), gate_cools=True) == (
        [1.5, 1.5],
        3,
    )


async def test_the_retry_budget_caps_a_retry_after() -> None:
    sleeps = Sleeps()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        raise throttled(100)

    with pytest.raises(RateLimitedError):
        await RetryPolicy(max_attempts=5, max_total_seconds=10, sleep=sleeps).call(attempt)
    assert (calls, sleeps.waits) == (1, [])  # waiting 100 s would not fit in 10 s: give up now


def test_lease_tokens_are_unique() -> None:
    a = deployment("a")
    assert Lease(a).token != Lease(a).token
