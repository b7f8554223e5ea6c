"""The dispatcher plans a line once and builds each deployment's requests once, however many
deployments and attempts the line takes; it holds the state lines share (token cache, warnings);
an answer its adapter cannot read is a bad response, a deployment that cannot send sends nothing.
(The exchange and its errors: test_wire.py; retries: test_retry.py.)"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers import dispatcher as dispatcher_module
from providers import planner
from providers.adapter import Capabilities, HttpAdapter, WireRequest
from providers.adapters import cohere
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Candidate, Dispatcher
from providers.errors import BadResponseError, ConfigurationError, ProviderError
from providers.planner import Part
from providers.retry import RetryPolicy
from providers.types import RerankRequest, RerankResponse
from tests.adapter_kit import FakeSleep, Mock, failure, transport_for
from tests.cases.case import req
from tests.cases.cohere import dep, ok

REQUEST = RerankRequest(query="solar power", documents=["solar power plants", "coffee", "wind"])


def deployment(base: str | None, index: int, key: str | None = "k") -> Deployment:
    return Deployment(
        model="my-reranker",
        provider="cohere",
        wire_model="rerank-v3.5",
        credentials=Credentials(api_key=SecretStr(key) if key else None, api_base=base),
        name=f"my-reranker#{index}",
    )


def first_fails_then_ok() -> Callable[[httpx.Request], httpx.Response]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"message": "down"})
        return httpx.Response(
            200, json={"results": [{"index": i, "relevance_score": 0.9 - i / 10} for i in range(3)]}
        )

    return answer


class Counts:
    """Spies on the real planner and on an adapter's request builder (both still do their work)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.plans = 0
        self.builds: dict[str, int] = {}

        def plan(request: RerankRequest, capabilities: Capabilities) -> list[Part]:
            self.plans += 1
            return planner.plan(request, capabilities)

        monkeypatch.setattr(dispatcher_module, "plan", plan)

    def adapter(self) -> HttpAdapter:
        def build(base: str, d: Deployment, request: RerankRequest) -> WireRequest:
            self.builds[d.label] = self.builds.get(d.label, 0) + 1
            return cohere.build_request(base, d, request)

        return dataclasses.replace(cohere.ADAPTER, build_request=build)


async def send(candidates: list[Candidate], max_attempts: int = 2) -> RerankResponse:
    transport = httpx.MockTransport(first_fails_then_ok())
    async with httpx.AsyncClient(transport=transport) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=max_attempts, sleep=FakeSleep()))
        return await dispatcher.rerank_any(candidates, REQUEST)


async def test_three_deployments_with_equal_capabilities_plan_a_line_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = Counts(monkeypatch)
    adapter = counts.adapter()
    deployments = [deployment(f"https://{host}.example", i) for i, host in enumerate("abc")]
    response = await send([(adapter, d) for d in deployments])
    assert response.attempts == 2  # the first attempt failed, the second went elsewhere
    assert counts.plans == 1  # before: 3 to choose + 1 to count + 1 per attempt = 6
    assert counts.builds == {d.label: 1 for d in deployments}


async def test_a_line_is_planned_once_per_distinct_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = Counts(monkeypatch)
    adapter = counts.adapter()
    bases = ["https://a.example", "https://b.example/v1", "https://c.example", "https://d.example/v1"]
    deployments = [deployment(base, i) for i, base in enumerate(bases)]
    assert len({adapter.capabilities(d) for d in deployments}) == 2  # Cohere v2 and v1
    response = await send([(adapter, d) for d in deployments], max_attempts=3)
    assert response.attempts == 2
    assert counts.plans == 2
    assert counts.builds == {d.label: 1 for d in deployments}


async def test_an_unusable_deployment_is_logged_once_per_dispatcher(caplog: pytest.LogCaptureFixture) -> None:
    keyless, healthy = deployment("https://a.example", 0, key=None), deployment("https://b.example", 1)
    ok = httpx.Response(
        200, json={"results": [{"index": i, "relevance_score": 0.9 - i / 10} for i in range(3)]}
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _request: ok)) as client:
        for _ in range(2):  # two workers: each reports it once, whatever the number of lines
            dispatcher = Dispatcher(client, RetryPolicy(max_attempts=1))
            with caplog.at_level(logging.WARNING, logger="rerank_runner.http"):
                for _ in range(3):
                    response = await dispatcher.rerank_any(
                        [(cohere.ADAPTER, keyless), (cohere.ADAPTER, healthy)], REQUEST
                    )
                    assert response.deployment == healthy.label
            assert dispatcher.warned == {keyless.label}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"{keyless.label} cannot serve lines"
    ] * 2


# --- answers an adapter cannot read, deployments that cannot send ----------------------------------


async def fails(mock: Mock, request: RerankRequest | None = None) -> ProviderError:
    exc, _ = await failure(cohere.ADAPTER, dep(), request or req(), mock)
    return exc


async def test_200_with_malformed_json_is_bad_response() -> None:
    exc = await fails(Mock(httpx.Response(200, text='{"results": [', headers={"x-request-id": "r"})))
    assert isinstance(exc, BadResponseError)
    assert (exc.code, exc.status, exc.request_id, exc.body_excerpt) == (
        "bad_response",
        200,
        "r",
        '{"results": [',
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"id": "x", "results": [{"index": 2, "relevance_score": 0.5}]}, id="index-past-end"),
        pytest.param({"id": "x", "results": [{"index": -1, "relevance_score": 0.5}]}, id="negative-index"),
        pytest.param({"id": "x", "results": [{"relevance_score": 0.5}]}, id="no-index"),
        pytest.param({"id": "x", "results": [{"index": 0, "relevance_score": None}]}, id="null-score"),
        pytest.param({"id": "x", "results": [{"index": 0, "relevance_score": "high"}]}, id="text-score"),
        pytest.param({"id": "x", "data": []}, id="no-results"),
        pytest.param({"id": "x", "results": None}, id="null-results"),
    ],
)
async def test_200_with_wrong_shape_is_bad_response(body: dict[str, Any]) -> None:
    exc = await fails(Mock(httpx.Response(200, json=body)))
    assert isinstance(exc, BadResponseError)
    assert exc.status == 200
    assert exc.body_excerpt == httpx.Response(200, json=body).text


@pytest.mark.parametrize("text", ["[]", "null", '{"results": [], "meta": "v2"}'])
async def test_200_with_non_object_json_is_bad_response(text: str) -> None:
    exc = await fails(Mock(httpx.Response(200, text=text)))
    assert isinstance(exc, BadResponseError)


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_is_configuration_error_and_sends_nothing(key: str | None) -> None:
    mock = Mock(ok())
    async with transport_for(mock) as (transport, _):
        with pytest.raises(ConfigurationError) as raised:
            await transport.rerank(cohere.ADAPTER, dep(key=key), req())
    assert "COHERE_API_KEY" in raised.value.message
    assert "cohere/rerank-v3.5" in raised.value.message
    assert (raised.value.code, raised.value.retryable) == ("configuration", False)
    assert mock.requests == []


async def test_lines_take_turns_over_the_clients_and_a_line_keeps_its_client() -> None:
    sent: list[str] = []

    def recording(name: str) -> Callable[[httpx.Request], httpx.Response]:
        answer = first_fails_then_ok()

        def record(request: httpx.Request) -> httpx.Response:
            sent.append(name)
            return answer(request)

        return record

    d = deployment("https://a.example", 0)
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(recording("one"))) as one,
        httpx.AsyncClient(transport=httpx.MockTransport(recording("two"))) as two,
    ):
        policy = RetryPolicy(max_attempts=2, sleep=FakeSleep())
        dispatcher = Dispatcher(one, policy, more_clients=[two])
        attempts = [(await dispatcher.rerank(cohere.ADAPTER, d, REQUEST)).attempts for _ in range(4)]
    assert attempts == [2, 2, 1, 1]  # each client's first answer is a 503, retried on that client
    assert sent == ["one", "one", "two", "two", "one", "two"]
