"""Per-deployment stats: counted in memory per worker, summed across workers in one Redis hash
that expires with the batch, read back with quantiles from fixed buckets, the current
cool-down and the cost at the model list's prices."""

from __future__ import annotations

import math

import pytest
from redis.asyncio import Redis

from jobs import keys
from jobs.stats import StatsObserver, deployment_stats, describe, flatten_usage, quantile
from providers.events import LineContext, current_line

TTL_MS = 60_000


def test_quantiles_interpolate_inside_fixed_buckets() -> None:
    buckets = {0.1: 10.0, 0.25: 10.0, math.inf: 0.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.95) == pytest.approx(0.1 + 0.15 * 9 / 10)
    assert quantile({0.05: 2.0, 0.5: 2.0}, 0.75) == pytest.approx(0.375)  # from 0.25: 0.1 and 0.25 are empty
    assert quantile({0.1: 1.0, math.inf: 3.0}, 0.95) == 60.0  # past the last bound: that bound
    assert quantile({}, 0.5) is None


def test_usage_is_flattened_to_numbers() -> None:
    usage = {"billed_units": {"search_units": 2}, "tokens": {"input_tokens": 7}, "note": "x", "flag": True}
    assert flatten_usage(usage) == {"billed_units.search_units": 2, "tokens.input_tokens": 7}
    assert flatten_usage(None) == {}


def worker_traffic(stats: StatsObserver, batch: str, lines: int) -> None:
    """What a worker sees for ``lines`` lines of ``batch``: one 200 each, a 429 and a retry
    on the first, and a failed line on another deployment."""
    token = current_line.set(LineContext(batch=batch, line_id="x", job_id=f"{batch}:x"))
    try:
        stats.request("co#0", 429, 0.02)
        stats.cooldown("co#0", 1.0)
        stats.retry("co#0")
        for n in range(lines):
            stats.request("co#0", 200, 0.2 + n / 100)
            record = {"deployment": "co#0", "usage": {"billed_units": {"search_units": 1}}}
            stats.line_finished("succeeded", record)
        current_line.get().deployment = "jina#1"  # type: ignore[union-attr]
        stats.request("jina#1", 503, 0.05)
        stats.line_finished("failed", {"error": {"code": "server_error"}})
    finally:
        current_line.reset(token)


async def test_two_workers_add_up_in_one_hash_that_expires_with_the_batch(redis: Redis) -> None:
    first, second = StatsObserver(TTL_MS), StatsObserver(TTL_MS)
    worker_traffic(first, "b", 10)
    worker_traffic(second, "b", 5)
    await first.flush(redis)
    await second.flush(redis)
    await second.flush(redis)  # nothing new: nothing added
    assert 0 < await redis.pttl(keys.batch_stats("b")) <= TTL_MS
    prices = {"co": {"input_cost_per_query": 0.002}}
    co, jina = await deployment_stats(redis, "b", prices)
    assert (co.deployment, co.requests, co.retries, co.cooldowns) == ("co#0", 17, 2, 2)
    assert co.statuses == {"2xx": 15, "429": 2}
    assert co.lines == {"succeeded": 15} and co.usage == {"billed_units.search_units": 15}
    assert co.cost == pytest.approx(15 * 0.002)
    shown = co.to_json()
    # 2 requests <= 50 ms, 11 in (100, 250], 4 in (250, 500]: interpolated inside the bucket
    assert shown["p50_ms"] == pytest.approx(100 + 150 * 6.5 / 11, abs=0.1)
    assert shown["p95_ms"] == pytest.approx(250 + 250 * 3.15 / 4, abs=0.1)
    assert (jina.requests, jina.statuses, jina.errors, jina.cost) == (
        2,
        {"5xx": 2},
        {"server_error": 2},
        None,
    )
    assert "co#0: requests 17 (2xx 15, 429 2)" in describe(co) and "cost $0.0300" in describe(co)


async def test_events_outside_a_line_are_not_counted_and_the_cool_down_is_read_live(redis: Redis) -> None:
    stats = StatsObserver(0)
    stats.request("co#0", 200, 0.1)  # no line: nothing to attribute it to
    assert not stats.pending
    worker_traffic(stats, "b", 1)
    await stats.flush(redis)
    assert await redis.pttl(keys.batch_stats("b")) == -1  # RR_RESULT_TTL_DAYS=0: kept
    seconds, _ = await redis.time()
    await redis.set(keys.limiter("co#0") + ":cool", str((seconds + 30) * 1000))
    co, _ = await deployment_stats(redis, "b")
    assert 28 < co.cooling_s <= 30
    assert "cooling down" in describe(co)


async def test_lines_the_score_cache_served_cost_nothing(redis: Redis) -> None:
    stats = StatsObserver(0)
    token = current_line.set(LineContext(batch="b", line_id="x", job_id="b:x"))
    stats.line_finished("succeeded", {"deployment": "cache", "usage": None})
    current_line.reset(token)
    await stats.flush(redis)
    (cache,) = await deployment_stats(redis, "b", {"co": {"input_cost_per_query": 0.002}})
    assert (cache.deployment, cache.requests, cache.lines, cache.cost) == ("cache", 0, {"succeeded": 1}, 0.0)
