"""litellm_proxy adapter: URLs, bodies, parsing and errors; the local proxy; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.litellm_proxy import ADAPTER, rerank_url
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError
from providers.registry import credentials_from
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument, RerankRequest
from tests.adapter_kit import (
    Mock,
    check_error_mapping,
    check_missing_setting,
    deployment,
    e2e_env,
    failure,
    rerank,
    single,
    wires,
)
from tests.e2e import run_batch
from tests.ranking_lines import CHUNKED, CHUNKED_RESULTS, CHUNKED_SENT, check_records, lines_for, rendered
from tests.servers.litellm_proxy import LiteLLMProxyServer, litellm_proxy_server
from tests.wire_server import rate_limited

KEY = "sk-proxy-test"
BASE = "http://proxy.internal:4000"
MODEL = "my-reranker"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure.", "year": 2020},
]
HEAD = {"model": MODEL, "query": "solar power"}
STRINGS: list[Document] = ["solar power plants", "coffee"]
LONG = " ".join(f"w{i}" for i in range(10))


def dep(base: str | None = BASE, key: str | None = KEY) -> Deployment:
    return deployment("litellm_proxy", MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], meta: dict[str, Any] | None = None) -> httpx.Response:
    body = {
        "id": "resp-1",
        "results": [{"index": i, "relevance_score": s} for i, s in results],
        "meta": meta if meta is not None else {"billed_units": {"search_units": 1}},
    }
    return httpx.Response(200, json=body, headers={"x-litellm-call-id": "call-1"})


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (BASE, f"{BASE}/v1/rerank"),
        (f"{BASE}/", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1/", f"{BASE}/v1/rerank"),
        (f"{BASE}/v1/rerank", f"{BASE}/v1/rerank"),
        (f"{BASE}/rerank", f"{BASE}/rerank"),
        (f"{BASE}/v2/rerank", f"{BASE}/v2/rerank"),
        ("https://gw.example.com/litellm", "https://gw.example.com/litellm/v1/rerank"),
        ("https://gw.example.com/apiv1", "https://gw.example.com/apiv1/v1/rerank"),
    ],
)
def test_url_follows_the_base(base: str, url: str) -> None:
    assert rerank_url(base) == url
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        pytest.param({}, {**HEAD, "documents": STRINGS}, id="strings"),
        pytest.param(
            {"top_n": 1, "return_documents": True},
            {**HEAD, "documents": STRINGS, "top_n": 1},
            id="top_n-sent-return_documents-never",
        ),
        pytest.param(
            {"documents": OBJECTS},
            {**HEAD, "documents": [
                "title: Solar panels\ntext: Photovoltaic cells turn light into power.",
                "title: Coffee\ntext: Espresso is brewed under pressure.\nyear: 2020",
            ]},
            id="objects-rendered",
        ),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["year", "title"]},
            {**HEAD, "documents": ["title: Solar panels", "year: 2020\ntitle: Coffee"]},
            id="objects-rendered-with-rank_fields",
        ),
        pytest.param(
            {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "solar"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]},
            id="max_chunks_per_doc-chunked-here-top_n-after-pooling",
        ),
    ],
)  # fmt: skip
def test_body_is_what_any_backend_takes(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_long_lists_go_in_one_request() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(3000)]
    (wire,) = wires(ADAPTER, dep(), req(documents=documents))
    assert len(wire.body["documents"]) == 3000


async def test_sends_bearer_key_to_the_proxy() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(), req(top_n=2), mock)
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == ("POST", f"{BASE}/v1/rerank")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {**HEAD, "documents": STRINGS, "top_n": 2}


# --- what comes back --------------------------------------------------------------------------------


async def test_results_are_sorted_and_cut_here_with_the_proxys_meta() -> None:
    # a backend such as DeepInfra ignores top_n and answers in input order
    meta = {"billed_units": {"total_tokens": 40}, "tokens": {"input_tokens": 40, "output_tokens": 0}}
    mock = Mock(ok([(0, 0.2), (1, 0.6), (2, 0.95), (3, 0.6)], meta))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c", "d"], top_n=3), mock)
    assert response.results == [RankedDocument(2, 0.95), RankedDocument(1, 0.6), RankedDocument(3, 0.6)]
    assert response.response_id == "resp-1"
    assert response.usage == meta


@pytest.mark.parametrize("meta", [{}, {"api_version": {"version": "2"}}])
async def test_no_usage_when_the_proxy_reports_none(meta: dict[str, Any]) -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(ok([(0, 0.5), (1, 0.4)], meta)))
    assert response.usage is None


async def test_errors_keep_the_proxys_message_and_retry_after() -> None:
    message = "litellm.RateLimitError: CohereException - You are past the per minute request limit"
    envelope = {"error": {"message": message, "type": "throttling_error", "param": "None", "code": "429"}}
    await check_error_mapping(ADAPTER, dep(), req(), envelope, message, ok([(0, 0.9), (1, 0.1)]))


async def test_bad_key_is_an_authentication_error() -> None:
    envelope = {"error": {"message": "Authentication Error, Invalid proxy server token passed.",
                          "type": "auth_error", "param": "None", "code": "401"}}  # fmt: skip
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json=envelope)))
    assert isinstance(exc, AuthenticationError)
    assert exc.message == "Authentication Error, Invalid proxy server token passed."


async def test_missing_base_or_key_is_a_configuration_error() -> None:
    await check_missing_setting(ADAPTER, dep(base=None), req(), ("LITELLM_PROXY_API_BASE",))
    await check_missing_setting(ADAPTER, dep(key=None), req(), ("LITELLM_PROXY_API_KEY",))


def test_reads_only_the_proxy_variables_never_coheres() -> None:
    found = credentials_from({"LITELLM_PROXY_API_KEY": "k", "LITELLM_PROXY_API_BASE": "http://p:4000"})
    proxy = found["litellm_proxy"]
    assert proxy.api_key is not None and proxy.api_key.get_secret_value() == "k"
    assert proxy.api_base == "http://p:4000"
    cohere_only = credentials_from({"COHERE_API_KEY": "c", "COHERE_API_BASE": "https://api.cohere.com"})
    assert cohere_only["litellm_proxy"] == Credentials()


# --- against the local proxy ------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LiteLLMProxyServer]:
    with litellm_proxy_server(KEY, [MODEL]) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_through_the_local_proxy(
    server: LiteLLMProxyServer, client: httpx.AsyncClient
) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    reranker = Reranker(
        transport, {"litellm_proxy": Credentials(api_key=SecretStr(KEY), api_base=server.base_url)}
    )
    docs: list[Document] = ["coffee beans", "solar power plants", {"id": "s", "title": "solar farms"}]
    response = await reranker.rerank(f"litellm_proxy/{MODEL}", req(documents=docs, top_n=2))
    (seen,) = server.requests
    assert (seen.method, seen.path, seen.status) == ("POST", "/v1/rerank", 200)
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        **HEAD,
        "documents": ["coffee beans", "solar power plants", "title: solar farms"],
        "top_n": 2,
    }
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5)]
    assert response.usage == {"billed_units": {"search_units": 1}}
    assert response.response_id is not None


async def test_local_proxy_refuses_what_its_backend_refuses(
    server: LiteLLMProxyServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, named in [
        ({**good, "documents": [{"text": "a"}]}, "strings"),
        ({**good, "rank_fields": ["text"]}, "rank_fields"),
        ({**good, "model": "unknown"}, "Invalid model name"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 400, body
        assert named in answer.json()["error"]["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer sk-wrong"})
    assert (answer.status_code, answer.json()["error"]["type"]) == (401, "auth_error")


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_batch_through_a_litellm_proxy(server: LiteLLMProxyServer, redis_url: str, tmp_path: Path) -> None:
    model = f"litellm_proxy/{MODEL}"
    lines = lines_for(model, 12)
    chunked = {**CHUNKED, "model": model}
    server.fail_query(lines[4]["query"], rate_limited("0"))
    env = e2e_env(LITELLM_PROXY_API_KEY=KEY, LITELLM_PROXY_API_BASE=server.base_url)

    results, errors = run_batch(redis_url, [*lines, chunked], tmp_path, env)

    assert errors == []
    check_records(lines, results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert all(r["usage"] == {"billed_units": {"search_units": 1}} for r in results)
    assert [r["attempts"] for r in results[:6]] == [1, 1, 1, 1, 2, 1]
    assert {(r.path, r.headers["authorization"]) for r in server.requests} == {
        ("/v1/rerank", f"Bearer {KEY}")
    }
    bodies = {r.body["query"]: r.body for r in server.requests if r.status == 200}
    for line in lines:
        wanted = {"model": MODEL, "query": line["query"], "documents": rendered(line)}
        assert bodies[line["query"]] == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
    assert bodies["alpha omega"] == {"model": MODEL, "query": "alpha omega", "documents": CHUNKED_SENT}
