"""The hot path reports to its observer: the dispatcher each HTTP request (status, or none when
nothing answered) and each retry, and names the attempt's deployment on the running line; the
gate its waits, deferrals and cool-downs; a broken observer never fails a line."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from jobs import keys
from providers.adapters import cohere
from providers.deployment import Deployment, Limits
from providers.errors import DeferredError, RateLimitedError, ServerError
from providers.events import LineContext, Observer, Observers, current_line, status_class
from providers.gate import GatePolicy, RedisGate
from providers.types import RerankRequest
from tests.adapter_kit import Mock, deployment, transport_for
from tests.cases.cohere import ok
from tests.fake_clock import Clock

REQUEST = RerankRequest(query="solar power", documents=["solar power plants", "coffee"])
COHERE = deployment("cohere", "rerank-v3.5", key="k", base="https://api.cohere.com")


class Recorder(Observer):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("request", deployment, status))

    def retry(self, deployment: str) -> None:
        self.events.append(("retry", deployment))

    def gate_wait(self, deployment: str, seconds: float) -> None:
        self.events.append(("gate_wait", deployment, seconds))

    def deferred(self, deployments: str, seconds: float) -> None:
        self.events.append(("deferred", deployments, seconds))

    def cooldown(self, deployment: str, seconds: float) -> None:
        self.events.append(("cooldown", deployment, seconds))


class Broken(Observer):
    def request(self, deployment: str, status: int | None, seconds: float) -> None:
        raise RuntimeError("listener bug")


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), (429, "429"), (404, "4xx"), (503, "5xx"), (None, "none")]
)
def test_status_classes(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


async def test_dispatcher_reports_each_request_and_retry_and_names_the_attempt() -> None:
    recorder = Recorder()
    mock = Mock(
        httpx.Response(429, json={"message": "slow down"}, headers={"retry-after": "0"}),
        httpx.ConnectError("refused"),
        ok(),
    )
    line = LineContext(batch="b", line_id="x", job_id="b:x")
    token = current_line.set(line)
    try:
        async with transport_for(mock, max_attempts=3) as (dispatcher, _):
            dispatcher.observer = recorder
            response = await dispatcher.rerank(cohere.ADAPTER, COHERE, REQUEST)
    finally:
        current_line.reset(token)
    assert response.attempts == 3
    label = COHERE.label
    assert recorder.events == [
        ("request", label, 429),
        ("retry", label),
        ("request", label, None),  # no answer: a refused connection
        ("retry", label),
        ("request", label, 200),
    ]
    assert (line.deployment, line.attempt) == (label, 3)


async def test_a_broken_observer_is_logged_and_the_line_still_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    async with transport_for(Mock(ok())) as (dispatcher, _):
        dispatcher.observer = Observers([Broken(), recorder])
        response = await dispatcher.rerank(cohere.ADAPTER, COHERE, REQUEST)
    assert response.results and recorder.events == [("request", COHERE.label, 200)]
    assert "observer Broken failed on request" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def limited(name: str, rpm: int) -> Deployment:
    return Deployment(model="m", provider="cohere", wire_model="w", limits=Limits(rpm=rpm), name=name)


async def test_gate_reports_waits_deferrals_and_cool_downs(redis: Redis) -> None:
    clock, recorder = Clock(), Recorder()
    policy = GatePolicy(burst_requests=1.0, defer_after=1.0)
    gate = RedisGate(redis, keys.limiter, policy, sleep=clock.sleep, now_ms=clock, observer=recorder)
    slow = limited("slow", rpm=120)  # one request every 0.5 s
    for _ in range(3):  # the first two fit the burst, the third waits 0.5 s
        await gate.release(await gate.acquire([slow], 1, 1), None)
    assert recorder.events == [("gate_wait", "slow", 0.5)]
    lease = await gate.acquire([slow], 1, 1)
    await gate.release(lease, RateLimitedError("429", provider="cohere", retry_after=30))
    assert recorder.events[-1] == ("cooldown", "slow", 30)
    with pytest.raises(DeferredError):
        await gate.acquire([slow], 1, 1)
    kind, names, seconds = recorder.events[-1]
    assert (kind, names) == ("deferred", "slow") and seconds > policy.defer_after


async def test_gate_reports_the_cool_down_a_streak_of_failures_starts(redis: Redis) -> None:
    clock, recorder = Clock(), Recorder()
    policy = GatePolicy(failure_threshold=3, failure_cooldown=30.0)
    gate = RedisGate(redis, keys.limiter, policy, sleep=clock.sleep, now_ms=clock, observer=recorder)
    flaky = limited("flaky", rpm=6000)
    for _ in range(3):
        lease = await gate.acquire([flaky], 1, 1)
        await gate.release(lease, ServerError("503", provider="cohere", status=503))
    assert [e for e in recorder.events if e[0] == "cooldown"] == [("cooldown", "flaky", 30.0)]
    with pytest.raises(DeferredError):  # the cool-down reported is the one the gate keeps
        await gate.acquire([flaky], 1, 1)
