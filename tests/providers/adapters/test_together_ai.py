"""together_ai adapter: URLs, bodies, parsing and errors; the local Together API; one batch end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.together_ai import ADAPTER, DEFAULT_BASE
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
from tests.servers.together_ai import TogetherServer, together_server
from tests.wire_server import unavailable, words

KEY = "test-together-key"
WIRE_MODEL = "mixedbread-ai/Mxbai-Rerank-Large-V2"
OBJECTS: list[Document] = [
    {"id": "a", "title": "Llama", "text": "A domesticated South American camelid."},
    {"id": "b", "title": "Panda", "text": "A bear species endemic to China.", "rank": 2},
]
HEAD = {"model": WIRE_MODEL, "query": "animals near Peru"}
STRINGS: list[Document] = ["llamas live in Peru", "pandas live in China"]
LONG = " ".join(f"w{i}" for i in range(10))
KEY_NAMES = ("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN")


def dep(base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("together_ai", WIRE_MODEL, key, base)


def req(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "animals near Peru", "documents": STRINGS, **overrides})


def ok(results: list[tuple[int, float]], usage: Any = None) -> httpx.Response:
    body = {
        "object": "rerank",
        "id": "9dfa1a09",
        "model": WIRE_MODEL,
        "results": [{"index": i, "relevance_score": s, "document": {"text": None}} for i, s in results],
        "usage": usage,
    }
    return httpx.Response(200, json=body)


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (None, "https://api.together.ai/v1/rerank"),
        ("https://api.together.xyz/v1", "https://api.together.xyz/v1/rerank"),
        ("https://api.together.xyz/v1/", "https://api.together.xyz/v1/rerank"),
        ("https://api.together.xyz/v1/rerank", "https://api.together.xyz/v1/rerank"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/rerank"),  # as LiteLLM: the base carries /v1
    ],
)
def test_url_is_base_plus_rerank(base: str | None, url: str) -> None:
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})
    assert DEFAULT_BASE == "https://api.together.ai/v1"


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
                "title: Llama\ntext: A domesticated South American camelid.",
                "title: Panda\ntext: A bear species endemic to China.\nrank: 2",
            ]},
            id="objects-rendered",
        ),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["text"]},
            {**HEAD, "documents": [
                "A domesticated South American camelid.", "A bear species endemic to China.",
            ]},
            id="rank_fields-render-not-sent",
        ),
        pytest.param(
            {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"]},
            id="max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            {"documents": [LONG, "peru"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
            {**HEAD, "documents": ["w0 w1 w2 w3", "w4 w5 w6 w7", "peru"]},
            id="max_chunks_per_doc-chunked-here",
        ),
    ],
)  # fmt: skip
def test_body_takes_strings_only(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(), req(**overrides)).body == body


def test_long_lists_go_in_one_request() -> None:
    (wire,) = wires(ADAPTER, dep(), req(documents=[f"doc {i}" for i in range(2500)]))
    assert len(wire.body["documents"]) == 2500


async def test_sends_bearer_key() -> None:
    mock = Mock(ok([(0, 0.9), (1, 0.1)]))
    await rerank(ADAPTER, dep(), req(), mock)
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == ("POST", "https://api.together.ai/v1/rerank")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(sent.content) == {**HEAD, "documents": STRINGS}


# --- what comes back --------------------------------------------------------------------------------


async def test_results_sorted_cut_and_usage_as_reported() -> None:
    usage = {"prompt_tokens": 31, "completion_tokens": 0, "total_tokens": 31}
    mock = Mock(ok([(2, 0.3), (0, 0.8), (1, 0.5)], usage))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(0, 0.8), RankedDocument(1, 0.5)]
    assert response.response_id == "9dfa1a09"
    assert response.usage == {"tokens": usage}


@pytest.mark.parametrize("usage", [None, {}, {"total_tokens": None}])
async def test_no_usage_when_none_reported(usage: Any) -> None:
    response, _ = await rerank(ADAPTER, dep(), req(), Mock(ok([(0, 0.9), (1, 0.1)], usage)))
    assert response.usage is None


async def test_errors_carry_togethers_message_and_retry_after() -> None:
    message = "You have exceeded your rate limit for this model"
    envelope = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    await check_error_mapping(ADAPTER, dep(), req(), envelope, message, ok([(0, 0.9), (1, 0.1)]))


async def test_bad_key_is_an_authentication_error() -> None:
    envelope = {"error": {"message": "Invalid API key provided.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}  # fmt: skip
    exc, _ = await failure(ADAPTER, dep(), req(), Mock(httpx.Response(401, json=envelope)))
    assert isinstance(exc, AuthenticationError)
    assert exc.message == "Invalid API key provided."


async def test_missing_key_names_every_variable() -> None:
    await check_missing_setting(ADAPTER, dep(key=None), req(), KEY_NAMES)


def test_key_and_base_variables() -> None:
    found = credentials_from({"TOGETHERAI_API_KEY": "third", "TOGETHER_AI_API_KEY": "second"})["together_ai"]
    assert found.api_key is not None and found.api_key.get_secret_value() == "second"
    assert found.api_base is None
    both = credentials_from({"TOGETHER_API_KEY": "first", "TOGETHER_AI_API_BASE": "http://h/v1"})[
        "together_ai"
    ]
    assert both.api_key is not None and both.api_key.get_secret_value() == "first"
    assert both.api_base == "http://h/v1"


# --- against the local Together API -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TogetherServer]:
    with together_server(KEY, [WIRE_MODEL]) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


async def test_round_trip_with_the_local_api(server: TogetherServer, client: httpx.AsyncClient) -> None:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    base = f"{server.base_url}/v1"
    reranker = Reranker(transport, {"together_ai": Credentials(api_key=SecretStr(KEY), api_base=base)})
    docs: list[Document] = [{"id": "x", "title": "Panda"}, "llamas near Peru", "animals"]
    response = await reranker.rerank(f"together_ai/{WIRE_MODEL}", req(documents=docs, top_n=2))
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/v1/rerank", 200)
    assert seen.body == {**HEAD, "documents": ["title: Panda", "llamas near Peru", "animals"], "top_n": 2}
    assert response.results == [RankedDocument(1, 2 / 3), RankedDocument(2, 1 / 3)]
    assert response.usage == {"tokens": {"prompt_tokens": 15, "completion_tokens": 0, "total_tokens": 15}}
    assert response.request_id == seen.request_id


async def test_local_api_refuses_what_together_refuses(
    server: TogetherServer, client: httpx.AsyncClient
) -> None:
    url, auth = f"{server.base_url}/v1/rerank", {"authorization": f"Bearer {KEY}"}
    good = {**HEAD, "documents": ["a"]}
    for body, status, named in [
        ({**good, "documents": [{"text": "a"}]}, 400, "dedicated"),
        ({**good, "rank_fields": ["text"]}, 400, "dedicated"),
        ({**good, "max_chunks_per_doc": 2}, 400, "max_chunks_per_doc"),
        ({**good, "model": "nope/nope"}, 404, "Unable to access model"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == status, body
        assert named in answer.json()["error"]["message"]
    answer = await client.post(url, json=good, headers={"authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_api_key")


# --- end to end -------------------------------------------------------------------------------------


@pytest.mark.integration
def test_batch_against_together(server: TogetherServer, redis_url: str, tmp_path: Path) -> None:
    model = f"together_ai/{WIRE_MODEL}"
    lines = lines_for(model, 12)
    chunked = {**CHUNKED, "model": model}
    server.fail_query(lines[2]["query"], unavailable("0"))
    env = e2e_env(TOGETHER_API_KEY=KEY, TOGETHER_AI_API_BASE=f"{server.base_url}/v1")

    results, errors = run_batch(redis_url, [*lines, chunked], tmp_path, env)

    assert errors == []
    check_records(lines, results[:-1], rendered)
    assert results[-1]["results"] == CHUNKED_RESULTS
    assert [r["attempts"] for r in results[:4]] == [1, 1, 2, 1]
    assert {(r.path, r.headers["authorization"]) for r in server.requests} == {
        ("/v1/rerank", f"Bearer {KEY}")
    }
    answered = {r.request_id: r for r in server.requests if r.status == 200}
    for line, record in zip(lines, results, strict=False):
        seen = answered[record["request_id"]]
        wanted = {"model": WIRE_MODEL, "query": line["query"], "documents": rendered(line)}
        assert seen.body == wanted | ({"top_n": line["top_n"]} if "top_n" in line else {})
        tokens = sum(len(words(line["query"])) + len(words(d)) for d in rendered(line))
        assert record["usage"] == {
            "tokens": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
        }
    assert answered[results[-1]["request_id"]].body["documents"] == CHUNKED_SENT
