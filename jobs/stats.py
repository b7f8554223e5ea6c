"""Per-deployment statistics of a batch, aggregated across every worker in Redis.

Each worker counts events in memory (:class:`StatsObserver`) and flushes them every
``FLUSH_SECONDS`` (and at shutdown) as one pipeline of ``HINCRBY`` into the batch's stats
hash (:func:`jobs.keys.batch_stats`), which expires with the batch.  Fields are
``{deployment}|{counter}``: ``requests``, ``status:2xx`` (``429``, ``4xx``, ``5xx``, ``none``),
``le:{bucket}`` (request latency in fixed buckets, so quantiles add up across workers),
``latency_ms``, ``retries``, ``cooldowns``, ``deferrals``, ``gate_wait_ms``,
``lines:{status}``, ``error:{code}`` and ``usage:{path}`` (the provider's usage report,
flattened).  :func:`deployment_stats` reads it back for ``batch.py status``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs import keys
from providers.events import Observer, current_line, status_class

__all__ = [
    "BUCKETS",
    "CACHE",
    "FLUSH_SECONDS",
    "DeploymentStats",
    "StatsObserver",
    "deployment_stats",
    "describe",
    "flatten_usage",
    "price",
    "quantile",
]

log = logging.getLogger("rerank_runner.stats")

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)
"""Upper bounds (seconds) of the request-latency histogram, shared with the Prometheus one."""
FLUSH_SECONDS = 2.0
CACHE = "cache"
"""The ``deployment`` of a line the score cache served whole (:mod:`jobs.cache`)."""


def flatten_usage(usage: Any, prefix: str = "") -> dict[str, float]:
    """``{"billed_units": {"search_units": 1}}`` -> ``{"billed_units.search_units": 1}``
    (numbers only)."""
    found: dict[str, float] = {}
    if isinstance(usage, dict):
        for name, value in usage.items():
            found.update(flatten_usage(value, f"{prefix}{name}."))
    elif isinstance(usage, int | float) and not isinstance(usage, bool):
        found[prefix.rstrip(".")] = usage
    return found


_BUCKET_NAMES = tuple("inf" if math.isinf(b) else f"{b:g}" for b in BUCKETS)


def _bucket(seconds: float) -> str:
    return _BUCKET_NAMES[bisect.bisect_left(BUCKETS, seconds)]


class StatsObserver(Observer):
    """Counts each event under the batch of the line it belongs to; :meth:`flush` writes them."""

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms
        self.pending: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))

    def _add(self, deployment: str, counter: str, amount: float = 1) -> None:
        line = current_line.get()
        if line is not None:
            self.pending[line.batch][f"{deployment}|{counter}"] += amount

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        line = current_line.get()
        if line is None:
            return
        counts = self.pending[line.batch]
        counts[f"{deployment}|requests"] += 1
        counts[f"{deployment}|status:{status_class(status)}"] += 1
        counts[f"{deployment}|le:{_bucket(seconds)}"] += 1
        counts[f"{deployment}|latency_ms"] += round(seconds * 1000)

    def retry(self, deployment: str) -> None:
        self._add(deployment, "retries")

    def gate_wait(self, deployment: str, seconds: float) -> None:
        self._add(deployment, "gate_wait_ms", round(seconds * 1000))

    def deferred(self, deployments: str, seconds: float) -> None:
        for deployment in deployments.split(", "):
            self._add(deployment, "deferrals")

    def cooldown(self, deployment: str, seconds: float) -> None:
        self._add(deployment, "cooldowns")

    def line_finished(self, status: str, record: dict[str, Any]) -> None:
        line = current_line.get()
        deployment = record.get("deployment") or (line and line.deployment) or "none"
        self._add(deployment, f"lines:{status}")
        if error := record.get("error"):
            self._add(deployment, f"error:{error.get('code', 'error')}")
        for path, amount in flatten_usage(record.get("usage")).items():
            self._add(deployment, f"usage:{path}", amount)

    async def flush(self, redis: Redis) -> None:
        """Write what was counted since the last flush; on a Redis error it is kept for the next."""
        pending, self.pending = self.pending, defaultdict(lambda: defaultdict(float))
        if not pending:
            return
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for batch, counts in pending.items():
                    key = keys.batch_stats(batch)
                    for name, amount in counts.items():
                        if float(amount).is_integer():
                            pipe.hincrby(key, name, int(amount))
                        else:
                            pipe.hincrbyfloat(key, name, amount)
                    if self.ttl_ms:
                        pipe.pexpire(key, self.ttl_ms)
                await pipe.execute()
        except RedisError as exc:
            for batch, counts in pending.items():
                for name, amount in counts.items():
                    self.pending[batch][name] += amount
            log.warning("could not write deployment stats (%s); kept for the next flush", exc)

    async def run(self, redis: Redis, every: float = FLUSH_SECONDS) -> None:
        while True:
            await asyncio.sleep(every)
            await self.flush(redis)


def quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """The ``q`` quantile (seconds) of a fixed-bucket histogram (upper bound -> count), linearly
    interpolated inside its bucket as Prometheus's ``histogram_quantile`` does."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0.0, 0.0
    for bound in sorted(set(BUCKETS) | set(buckets)):  # empty buckets are not stored
        count = buckets.get(bound, 0.0)
        if count and seen + count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - seen) / count
        seen += count
        lower = bound if not math.isinf(bound) else lower
    return lower


@dataclass
class DeploymentStats:
    deployment: str
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    """Requests by status class: ``2xx``, ``429``, ``4xx``, ``5xx``, ``none`` (no answer)."""
    latency: dict[float, float] = field(default_factory=dict)
    """Request-latency histogram: bucket upper bound (seconds) -> requests."""
    retries: int = 0
    cooldowns: int = 0
    deferrals: int = 0
    lines: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    cooling_s: float = 0.0
    """How long the deployment's current cool-down still lasts (0: none)."""
    cost: float | None = None
    """From the model list's prices; None when it has none for this deployment's model."""

    def to_json(self) -> dict[str, Any]:
        p50, p95 = quantile(self.latency, 0.5), quantile(self.latency, 0.95)
        return {
            "deployment": self.deployment,
            "requests": self.requests,
            "status": self.statuses,
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p95_ms": None if p95 is None else round(p95 * 1000, 1),
            "retries": self.retries,
            "cooldowns": self.cooldowns,
            "deferrals": self.deferrals,
            "cooling_s": round(self.cooling_s, 1),
            "lines": self.lines,
            "errors": self.errors,
            "usage": self.usage,
            "cost": None if self.cost is None else round(self.cost, 6),
        }


def _number(raw: bytes) -> float:
    value = float(raw)
    return int(value) if value.is_integer() else value


def _apply(stats: DeploymentStats, counter: str, amount: float) -> None:
    kind, _, name = counter.partition(":")
    if kind in ("requests", "retries", "cooldowns", "deferrals"):
        setattr(stats, kind, int(amount))
    elif kind == "le":
        stats.latency[math.inf if name == "inf" else float(name)] = amount
    else:
        target = {"status": stats.statuses, "lines": stats.lines, "error": stats.errors}.get(kind)
        if target is not None:
            target[name] = int(amount)
        elif kind == "usage":
            stats.usage[name] = amount


def price(stats: DeploymentStats, prices: Mapping[str, float] | None) -> float | None:
    """Cost to date: search units (else successful requests) at ``input_cost_per_query``, plus
    tokens at ``input_cost_per_token``, as the provider reported them."""
    if not prices:
        return None
    usage = stats.usage
    units = usage.get("billed_units.search_units") or stats.statuses.get("2xx", 0)
    tokens = next(
        (usage[name] for name in ("tokens.total_tokens", "tokens.input_tokens", "tokens.prompt_tokens")
         if name in usage),
        0,
    )  # fmt: skip
    return units * prices.get("input_cost_per_query", 0.0) + tokens * prices.get("input_cost_per_token", 0.0)


async def deployment_stats(
    redis: Redis, batch: str, prices: Mapping[str, Mapping[str, float]] | None = None
) -> list[DeploymentStats]:
    """The batch's per-deployment stats as flushed so far, with each deployment's current
    cool-down (Redis clock) and its cost from ``prices`` (model name -> LiteLLM prices)."""
    raw = cast(dict[bytes, bytes], await redis.hgetall(keys.batch_stats(batch)))  # type: ignore[misc]
    found: dict[str, DeploymentStats] = {}
    for name, value in raw.items():
        deployment, _, counter = name.decode().rpartition("|")
        stats = found.setdefault(deployment, DeploymentStats(deployment))
        _apply(stats, counter, _number(value))
    ordered = sorted(found.values(), key=lambda s: s.deployment)
    if not ordered:
        return ordered
    seconds, micros = cast(tuple[int, int], await redis.time())
    now_ms = seconds * 1000 + micros / 1000
    cools = await redis.mget([keys.limiter(s.deployment) + ":cool" for s in ordered])
    for stats, cool in zip(ordered, cools, strict=True):
        stats.cooling_s = max(float(cool) - now_ms, 0) / 1000 if cool else 0.0
        if stats.deployment == CACHE:  # lines the score cache served whole: nothing was billed
            stats.cost = 0.0
        else:
            model = stats.deployment.rpartition("#")[0] or stats.deployment
            stats.cost = price(stats, (prices or {}).get(model))
    return ordered


def _usage_text(usage: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {amount:g}" for name, amount in sorted(usage.items())) or "none reported"


def describe(stats: DeploymentStats) -> str:
    """Two lines for ``batch.py status``: traffic and latency, then retries, usage and cost."""
    shown = stats.to_json()
    statuses = ", ".join(f"{name} {count}" for name, count in sorted(stats.statuses.items()))
    latency = (
        f"p50 {shown['p50_ms']:g} ms, p95 {shown['p95_ms']:g} ms"
        if shown["p50_ms"] is not None
        else "no latency"
    )
    cooling = f"cooling down {stats.cooling_s:.1f}s" if stats.cooling_s else "not cooling down"
    cost = "no price in the model list" if stats.cost is None else f"${stats.cost:.4f}"
    lines = ", ".join(f"{name} {count}" for name, count in sorted(stats.lines.items())) or "none"
    errors = ", ".join(f"{code} {count}" for code, count in sorted(stats.errors.items()))
    return (
        f"  {stats.deployment}: requests {stats.requests} ({statuses or 'none'}); {latency}; lines {lines}"
        f"{f' (errors: {errors})' if errors else ''}\n"
        f"    retries {stats.retries}, cool-downs {stats.cooldowns} ({cooling}), "
        f"deferrals {stats.deferrals}; usage {_usage_text(stats.usage)}; cost {cost}"
    )
