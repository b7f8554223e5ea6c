"""watsonx adapter and auth: URLs, bodies, tokens / Zen keys / the IBM IAM exchange (shared,
cached, refreshed), parsing and errors; the local watsonx.ai and IAM; one batch end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.watsonx import ADAPTER
from providers.auth.watsonx_iam import WatsonxAuth
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher, prepare
from providers.errors import AuthenticationError, ServerError
from providers.registry import credentials_from
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument, RerankRequest
from tests.adapter_kit import (
    FakeSleep,
    Mock,
    check_error_mapping,
    check_missing_setting,
    e2e_env,
    failure,
    rerank,
)
from tests.e2e import run_batch
from tests.ranking_lines import CHUNKED, CHUNKED_SENT, expected_results, lines_for, rendered
from tests.servers.watsonx import MODEL, IamServer, WatsonxServer, logit, problem
from tests.wire_server import unavailable, words

API_KEY, TOKEN, ZEN = "test-ibm-api-key", "ready-bearer-token", "dXNlcjprZXk="
BASE, PROJECT = "https://us-south.ml.cloud.ibm.com", "test-project"
URL = f"{BASE}/ml/v1/text/rerank?version=2024-05-31"
STRINGS: list[Document] = ["solar power plants", "coffee beans"]
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar", "body": "photovoltaic power"},
    {"id": "b", "title": "Coffee", "body": "espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))
HEAD = {"model_id": MODEL, "query": "solar power", "project_id": PROJECT}


def dep(base: str | None = BASE, key: str | None = None, **params: Any) -> Deployment:
    settings = {"project_id": PROJECT, "token": SecretStr(TOKEN), **params}
    return Deployment(
        model=f"watsonx/{MODEL}",
        provider="watsonx",
        wire_model=MODEL,
        credentials=Credentials(
            api_key=SecretStr(key) if key else None,
            api_base=base,
            params={k: v for k, v in settings.items() if v is not None},
        ),
    )


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": STRINGS, **overrides})


def inputs(*texts: Document) -> list[dict[str, Document]]:
    return [{"text": t} for t in texts]


def ok(results: list[tuple[int, float]], tokens: int | None = 12) -> httpx.Response:
    body: dict[str, Any] = {
        "model_id": MODEL,
        "results": [{"index": i, "score": s} for i, s in results],
        "created_at": "2026-01-02T03:04:05.678Z",
    }
    if tokens is not None:
        body["input_token_count"] = tokens
    return httpx.Response(200, json=body, headers={"x-global-transaction-id": "wx-txn-1"})


# --- URL, settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "params", "url"),
    [
        (BASE, {}, URL),
        (f"{BASE}/", {}, URL),
        (f"{BASE}/ml/v1/text/rerank", {}, URL),
        (
            "http://127.0.0.1:9",
            {"api_version": "2025-02-11"},
            "http://127.0.0.1:9/ml/v1/text/rerank?version=2025-02-11",
        ),
    ],
)
def test_url(base: str, params: dict[str, str], url: str) -> None:
    [(_, wire)] = prepare(ADAPTER, dep(base, **params), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


@pytest.mark.parametrize(
    ("d", "names"),
    [
        (dep(base=None), ("WATSONX_API_BASE", "WATSONX_URL", "WX_URL", "WML_URL")),
        (
            dep(project_id=None),
            ("WATSONX_PROJECT_ID", "WX_PROJECT_ID", "PROJECT_ID", "WATSONX_DEPLOYMENT_SPACE_ID"),
        ),
        (
            dep(token=None),
            ("WATSONX_TOKEN", "WATSONX_ZENAPIKEY", "WATSONX_APIKEY", "WATSONX_API_KEY", "WX_API_KEY"),
        ),
    ],
    ids=["base", "project-or-space", "credentials"],
)
async def test_missing_setting_is_configuration_error_and_sends_nothing(
    d: Deployment, names: tuple[str, ...]
) -> None:
    await check_missing_setting(ADAPTER, d, req(), names)


def test_environment_reaches_the_deployment_settings() -> None:
    found = credentials_from({
        "WX_API_KEY": "k3", "WATSONX_API_KEY": "k2", "WML_URL": "http://wml", "WX_URL": "http://wx",
        "WATSONX_TOKEN": TOKEN, "WATSONX_ZENAPIKEY": ZEN, "WATSONX_IAM_URL": "http://iam",
        "PROJECT_ID": "p3", "WX_PROJECT_ID": "p2", "WATSONX_SPACE_ID": "s2",
    })["watsonx"]  # fmt: skip
    assert found.api_key is not None and found.api_key.get_secret_value() == "k2"
    assert found.api_base == "http://wx"
    assert {k: found.param(k) for k in found.params} == {
        "token": TOKEN, "zen_api_key": ZEN, "watsonx_iam_url": "http://iam",
        "project_id": "p2", "space_id": "s2",
    }  # fmt: skip
    assert isinstance(found.params["token"], SecretStr)


# --- bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "overrides", "body"),
    [
        pytest.param(dep(), {}, {**HEAD, "inputs": inputs(*STRINGS)}, id="strings"),
        pytest.param(
            dep(), {"top_n": 1, "return_documents": True},
            {**HEAD, "inputs": inputs(*STRINGS), "parameters": {"return_options": {"top_n": 1}}},
            id="top_n-native-return_documents-never",
        ),
        pytest.param(
            dep(), {"documents": OBJECTS},
            {**HEAD, "inputs": inputs("title: Solar\nbody: photovoltaic power",
                                      "title: Coffee\nbody: espresso\nyear: 2020")},
            id="objects-rendered",
        ),
        pytest.param(
            dep(), {"documents": [*OBJECTS, "plain"], "rank_fields": ["body"]},
            {**HEAD, "inputs": inputs("body: photovoltaic power", "body: espresso", "plain")},
            id="rank_fields-rendered",
        ),
        pytest.param(
            dep(), {"documents": [LONG], "max_tokens_per_doc": 3, "top_n": 1},
            {**HEAD, "inputs": inputs(LONG),
             "parameters": {"return_options": {"top_n": 1}, "truncate_input_tokens": 3}},
            id="max_tokens_per_doc-native",
        ),
        pytest.param(
            dep(),
            {"documents": [LONG, "solar"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "inputs": inputs("w0 w1 w2 w3", "w4 w5 w6 w7", "solar")},
            id="max_chunks_per_doc-chunked-here",
        ),
        pytest.param(
            dep(project_id=None, space_id="space-1"), {},
            {"model_id": MODEL, "query": "solar power", "space_id": "space-1", "inputs": inputs(*STRINGS)},
            id="space",
        ),
        pytest.param(
            dep(space_id="space-1"), {}, {**HEAD, "inputs": inputs(*STRINGS)}, id="project-wins-over-space"
        ),
    ],
)  # fmt: skip
def test_body(d: Deployment, overrides: dict[str, Any], body: dict[str, Any]) -> None:
    [(_, wire)] = prepare(ADAPTER, d, req(**overrides))
    assert wire.body == body


# --- parsing and errors over MockTransport -------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "authorization"),
    [
        (dep(), f"Bearer {TOKEN}"),
        (dep(key=API_KEY, token=SecretStr(TOKEN)), f"Bearer {TOKEN}"),
        (dep(key=API_KEY, token=None, zen_api_key=SecretStr(ZEN)), f"ZenApiKey {ZEN}"),
    ],
    ids=["token-without-api-key", "token-wins", "zen-api-key"],
)
async def test_ready_credentials_and_parsing(d: Deployment, authorization: str) -> None:
    mock = Mock(ok([(1, -3.2), (0, 5.5), (2, 0.25)]))
    response, _ = await rerank(ADAPTER, d, req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(0, 5.5), RankedDocument(2, 0.25)]  # logits: sorted, cut here
    assert (response.usage, response.request_id) == ({"tokens": {"input_tokens": 12}}, "wx-txn-1")
    (sent,) = mock.requests
    assert (str(sent.url), sent.headers["authorization"]) == (URL, authorization)


async def test_no_token_count_is_no_usage() -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(ok([(0, 1.0), (1, 0.0)], tokens=None)))
    assert response.usage is None


async def test_error_mapping_in_watsonx_envelope() -> None:
    message = "Rate limit of 8 requests per second exceeded"
    envelope = {
        "errors": [{"code": "too_many_requests", "message": message}],
        "trace": "t-1",
        "status_code": 429,
    }
    await check_error_mapping(ADAPTER, dep(), req(top_n=1), envelope, message, ok([(0, 1.0)]))


async def test_invalid_token_is_authentication_error_with_trace() -> None:
    body = {
        "errors": [
            {"code": "authentication_token_not_valid", "message": "Failed to authenticate the request"}
        ],
        "trace": "3fd543d2a1b0",
        "status_code": 401,
    }
    error, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json=body)), max_attempts=3)
    assert isinstance(error, AuthenticationError)
    assert (error.status, error.message, error.request_id) == (
        401,
        "Failed to authenticate the request",
        body["trace"],
    )


# --- the IBM IAM exchange, against local IAM and watsonx.ai servers ----------------------------------


@pytest.fixture
def iam() -> Iterator[IamServer]:
    with IamServer(api_keys=[API_KEY]) as running:
        yield running


@pytest.fixture
def server(iam: IamServer) -> Iterator[WatsonxServer]:
    with WatsonxServer(iam=iam, project_id=PROJECT) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def exchanging(server: WatsonxServer, iam: IamServer, key: str = API_KEY, **params: Any) -> Deployment:
    return dep(server.base_url, key=key, **{"token": None, "watsonx_iam_url": iam.base_url, **params})


async def test_concurrent_lines_share_one_exchange(
    server: WatsonxServer, iam: IamServer, client: httpx.AsyncClient
) -> None:
    adapter = dataclasses.replace(ADAPTER, auth=WatsonxAuth())
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    d = exchanging(server, iam)
    responses = await asyncio.gather(*(transport.rerank(adapter, d, req()) for _ in range(20)))
    assert {tuple(r.results) for r in responses} == {
        (RankedDocument(0, logit(1.0)), RankedDocument(1, logit(0.0)))
    }
    assert len(iam.issued) == 1
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {iam.issued[0]}"}
    (exchange,) = iam.requests
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (
        exchange.raw.decode()
        == f"grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={API_KEY}"
    )


async def test_token_is_exchanged_again_shortly_before_it_expires(
    server: WatsonxServer, iam: IamServer, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    adapter = dataclasses.replace(ADAPTER, auth=WatsonxAuth(clock=clock))
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    d = exchanging(server, iam, watsonx_iam_url=f"{iam.base_url}/identity/token")  # a full URL works too
    start = clock.now
    for offset, exchanges in [(0, 1), (3000, 1), (3299, 1), (3301, 2), (3400, 2)]:
        clock.now = start + offset  # IAM tokens live 3,600 s; a new one is fetched 300 s before the end
        await transport.rerank(adapter, d, req())
        assert len(iam.issued) == exchanges, offset
    assert [r.headers["authorization"] for r in server.requests][-1] == f"Bearer {iam.issued[1]}"


async def test_unknown_api_key_is_authentication_error_not_retried(
    server: WatsonxServer, iam: IamServer, client: httpx.AsyncClient
) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=3, sleep=FakeSleep()))
    with pytest.raises(AuthenticationError) as raised:
        await transport.rerank(ADAPTER, exchanging(server, iam, key="not-a-key"), req())
    assert raised.value.message == "IBM IAM token exchange failed: Provided API key could not be found."
    assert (raised.value.status, len(iam.requests), server.requests) == (400, 1, [])


async def test_iam_outage_is_retried(
    server: WatsonxServer, iam: IamServer, client: httpx.AsyncClient
) -> None:
    iam.fail_next(unavailable("1"))
    sleep = FakeSleep()
    transport = Dispatcher(client, RetryPolicy(max_attempts=3, sleep=sleep))
    adapter = dataclasses.replace(ADAPTER, auth=WatsonxAuth())
    response = await transport.rerank(adapter, exchanging(server, iam), req())
    assert (response.attempts, sleep.waits, [r.status for r in iam.requests]) == (2, [1.0], [503, 200])
    iam.fail_next(unavailable())
    with pytest.raises(ServerError, match="IBM IAM token exchange failed"):
        fresh = dataclasses.replace(ADAPTER, auth=WatsonxAuth())
        await Dispatcher(client, RetryPolicy(max_attempts=1)).rerank(fresh, exchanging(server, iam), req())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**HEAD, "space_id": "s", "inputs": inputs("a")}, "Either space_id or project_id"),
        ({**HEAD, "inputs": inputs("a"), "return_documents": True}, "'return_documents' is not a valid"),
        ({**HEAD, "inputs": ["a"]}, "'inputs' must be a non-empty list of {text} objects"),
        ({**HEAD, "inputs": inputs("a"), "parameters": {"top_n": 1}}, "unknown field in 'parameters'"),
        ({**HEAD, "inputs": inputs("a"), "parameters": {"return_options": {"top_n": 0}}}, "'top_n' must be"),
        ({**HEAD, "inputs": inputs("a"),
          "parameters": {"return_options": {"top_n": 1}, "truncate_input_tokens": 5}}, None),
    ],
)  # fmt: skip
def test_local_server_validates_like_the_api(body: dict[str, Any], message: str | None) -> None:
    found = problem(body)
    assert found is None if message is None else message in str(found)


async def test_truncate_input_tokens_reaches_the_local_server(
    server: WatsonxServer, client: httpx.AsyncClient
) -> None:
    server.tokens.add(TOKEN)
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    truncated = req(documents=["power solar", "coffee solar power"], max_tokens_per_doc=1)
    response = await transport.rerank(ADAPTER, dep(server.base_url), truncated)
    # one word kept per input: "power" and "coffee" (untruncated, the second would win)
    assert response.results == [RankedDocument(0, logit(0.5)), RankedDocument(1, logit(0.0))]
    assert response.usage == {"tokens": {"input_tokens": 6}}


# --- end to end ---------------------------------------------------------------------------------------


@pytest.mark.integration
def test_watsonx_batch_end_to_end(
    server: WatsonxServer, iam: IamServer, redis_url: str, tmp_path: Path
) -> None:
    model = f"watsonx/{MODEL}"
    lines = [*lines_for(model, 9), {**CHUNKED, "model": model}, {
        "id": "truncated", "model": model, "query": "omega alpha", "max_tokens_per_doc": 1,
        "documents": ["beta alpha omega", "omega alpha"],
    }]  # fmt: skip
    env = e2e_env(
        WATSONX_APIKEY=API_KEY, WATSONX_URL=server.base_url, WATSONX_IAM_URL=iam.base_url,
        WATSONX_PROJECT_ID=PROJECT,
    )  # fmt: skip
    results, errors = run_batch(redis_url, lines, tmp_path, env, batch="watsonx-e2e")

    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines[:-2], results[:-2], strict=True):
        wanted = [{**item, "relevance_score": logit(item["relevance_score"])}
                  for item in expected_results(line, rendered(line))]  # fmt: skip
        assert record["results"] == wanted, line["id"]
        assert record.get("metadata") == line.get("metadata")
        assert record["usage"] == {"tokens": {"input_tokens": server_tokens(line)}}
    assert results[-2]["results"] == [{"index": 0, "relevance_score": logit(1.0)}]
    # the server kept one word per input: "beta" and "omega" (untruncated, the first would win)
    assert results[-1]["results"] == [
        {"index": 1, "relevance_score": logit(0.5)},
        {"index": 0, "relevance_score": logit(0.0)},
    ]
    assert len(iam.issued) == 1  # one exchange for the whole batch
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {iam.issued[0]}"}
    bodies = {r.body["query"]: r.body for r in server.requests}
    assert [i["text"] for i in bodies[CHUNKED["query"]]["inputs"]] == CHUNKED_SENT
    assert bodies["omega alpha"]["parameters"] == {"truncate_input_tokens": 1}
    for line in lines[:-2]:
        body = bodies[line["query"]]
        assert body["inputs"] == inputs(*rendered(line))
        assert (body["model_id"], body["project_id"]) == (MODEL, PROJECT)
        assert body.get("parameters") == (
            {"return_options": {"top_n": line["top_n"]}} if "top_n" in line else None
        )


def server_tokens(line: dict[str, Any]) -> int:
    return sum(len(words(line["query"])) + len(words(t)) for t in rendered(line))
