"""Redis's clock carried by the worker (providers/clock.py) and the gate on it: an acquire runs
no ``TIME``, and workers whose own clocks are hours off still share one pace on Redis's clock."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from jobs import keys
from providers.clock import SAMPLES, RedisClock, monotonic_ms
from providers.gate import GatePolicy, RedisGate
from tests.fake_clock import Clock
from tests.providers.test_gate import deployment, gate, gate_commands
from tests.support import command_calls

HOURS = 3 * 3_600_000


class FakeRedisTime:
    """A local clock and a Redis ``TIME`` ``offset`` ms ahead of it, answered at once and heard
    ``rtt`` ms later (a busy event loop; the wait moves the local clock)."""

    def __init__(self, offset: float, rtt: float = 2.0) -> None:
        self.local, self.offset, self.rtt, self.reads = 1_000_000.0, offset, rtt, 0

    def __call__(self) -> float:
        return self.local

    async def read(self) -> tuple[int, int]:
        self.reads += 1
        redis_us = round((self.local + self.offset) * 1000)
        self.local += self.rtt
        return redis_us // 1_000_000, redis_us % 1_000_000


def fake_clock(fake: FakeRedisTime, refresh: float = 5.0) -> RedisClock:
    return RedisClock(fake.read, refresh=refresh, local=fake)


async def test_redis_time_is_read_once_per_refresh_and_carried_between() -> None:
    fake = FakeRedisTime(offset=HOURS, rtt=50)  # a reply heard late does not set the clock back
    clock = fake_clock(fake)
    assert await clock.now_ms() == fake.local + HOURS
    fake.local += 4_000
    assert await clock.now_ms() == fake.local + HOURS
    assert fake.reads == SAMPLES
    fake.local += 1_000
    await clock.now_ms()
    assert fake.reads == 2 * SAMPLES


async def test_lines_arriving_together_share_one_reading() -> None:
    fake = FakeRedisTime(offset=-HOURS)
    clock = fake_clock(fake)
    await asyncio.gather(*(clock.now_ms() for _ in range(20)))
    assert fake.reads == SAMPLES


async def test_a_slower_reading_does_not_replace_a_more_certain_one() -> None:
    fake = FakeRedisTime(offset=0, rtt=2)
    clock = fake_clock(fake, refresh=1)
    await clock.now_ms()
    fake.rtt, fake.local = 80, fake.local + 1_000
    fake.offset = 60  # within the slow reading's own uncertainty (80 ms): noise, not a jump
    await clock.now_ms()
    assert clock.reading is not None and clock.reading.uncertainty == 2
    assert await clock.now_ms() == fake.local


async def test_a_reading_that_contradicts_the_kept_one_is_taken_at_once() -> None:
    fake = FakeRedisTime(offset=0, rtt=2)
    clock = fake_clock(fake, refresh=1)
    await clock.now_ms()
    fake.rtt, fake.local, fake.offset = 20, fake.local + 1_000, 60_000  # Redis's clock stepped
    assert await clock.now_ms() == fake.local + 60_000


async def test_the_quickest_of_a_readings_round_trips_is_kept() -> None:
    fake = FakeRedisTime(offset=0, rtt=40)
    rtts = iter([40, 2, 30])

    async def varying() -> tuple[int, int]:
        fake.rtt = next(rtts)
        return await fake.read()

    clock = RedisClock(varying, local=fake)
    await clock.now_ms()
    assert clock.reading is not None and clock.reading.uncertainty == 2


async def test_a_failed_reading_raises_and_is_tried_again() -> None:
    fake = FakeRedisTime(offset=0)
    calls = 0

    async def flaky() -> tuple[int, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Redis is restarting")
        return await fake.read()

    clock = RedisClock(flaky, local=fake)
    with pytest.raises(ConnectionError):
        await clock.now_ms()
    assert await clock.now_ms() == fake.local


async def test_an_rpm_limited_line_runs_no_time_command_on_redis_clock(redis: Redis) -> None:
    g = RedisGate(redis, keys.limiter, GatePolicy())
    commands = await gate_commands(redis, g, deployment("a", rpm=6_000_000), 10)
    assert commands == {"evalsha": 10, "mget": 10, "set": 10}


def skewed(redis: Redis, skew_ms: float) -> RedisGate:
    clock = RedisClock(lambda: redis.time(), local=lambda: monotonic_ms() + skew_ms)
    return RedisGate(redis, keys.limiter, GatePolicy(burst_requests=1.0), clock=clock)


async def test_workers_with_clocks_hours_apart_share_one_pace_on_redis_clock(redis: Redis) -> None:
    a = deployment("a", rpm=600)  # one request per 100 ms

    async def admitted_at(g: RedisGate, lines: int) -> list[float]:
        found = []
        for _ in range(lines):
            lease = await g.acquire([a], 1, 1)
            seconds, micros = await redis.time()
            found.append(seconds * 1000 + micros / 1000)
            await g.release(lease, None)
        return found

    ahead, behind = await asyncio.gather(
        admitted_at(skewed(redis, HOURS), 6), admitted_at(skewed(redis, -HOURS), 6)
    )
    times = sorted(ahead + behind)
    # 12 admissions with one request of burst: at least 10 intervals on Redis's clock (minus
    # the jitter of reading it after each admission); a clock hours off would have admitted a
    # worker at once every time or deferred it for hours
    assert times[-1] - times[0] >= 10 * 100 - 100
    assert times[-1] - times[0] < 3_000
    assert min(ahead) < max(behind) and min(behind) < max(ahead)  # interleaved, neither starved


@pytest.mark.parametrize(("rpm", "checks"), [(6_000, 0), (1_200, 1)])
async def test_only_a_wait_beyond_the_clock_jitter_is_checked_for_a_cool_down(
    redis: Redis, rpm: int, checks: int
) -> None:
    g = gate(redis, Clock(), burst_requests=0)
    a = deployment("a", rpm=rpm)  # the second line waits 10 ms, or 50 ms
    await redis.config_resetstat()
    await g.acquire([a], 1, 1)
    await g.acquire([a], 1, 1)
    calls = await command_calls(redis)
    assert (calls["evalsha"], calls.get("get", 0)) == (2, checks)


class SlowTrips(Clock):
    """A fake clock that moves 30 ms between each reading (each Redis round trip, say)."""

    def __call__(self) -> int:
        self.ms += 30
        return self.ms - 30


async def test_a_reserved_slot_is_waited_for_from_the_time_passed_not_from_the_reply(redis: Redis) -> None:
    clock = SlowTrips()
    g = gate(redis, clock, burst_requests=0)
    a = deployment("a", rpm=600)  # one per 100 ms: the second line's slot is 40 ms after it asks
    await g.acquire([a], 1, 1)
    await g.acquire([a], 1, 1)
    assert clock.sleeps == [0.01]  # 40 ms less the 30 ms the answer took
