"""NVIDIA NIM adapter: both routes' URLs and bodies, the shared HTTP path, errors, the wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.adapters import nvidia_nim
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, BadResponseError, InvalidRequestError
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
    e2e_lines,
    expected_results,
    failure,
    rerank,
    single,
    wires,
)
from tests.e2e import run_batch
from tests.servers.nvidia_nim import NimServer, check, logit, nim_server
from tests.wire_server import score

ADAPTER = nvidia_nim.ADAPTER
KEY = "nvapi-test"
HOSTED = "nvidia/llama-3_2-nv-rerankqa-1b-v2"
RANKING = "ranking/nvidia/llama-3.2-nv-rerankqa-1b-v2"
HOSTED_URL = f"https://ai.api.nvidia.com/v1/retrieval/{HOSTED}/reranking"
TEXTS = ["solar power plants", "coffee"]


def nim(wire_model: str = HOSTED, base: str | None = None, key: str | None = KEY) -> Deployment:
    return deployment("nvidia_nim", wire_model, key=key, base=base)


def request(**overrides: Any) -> RerankRequest:
    return RerankRequest(**{"query": "solar power", "documents": list(TEXTS), **overrides})


def body(documents: list[str], model: str = "nvidia/llama-3.2-nv-rerankqa-1b-v2") -> dict[str, Any]:
    return {
        "model": model,
        "query": {"text": "solar power"},
        "passages": [{"text": d} for d in documents],
        "truncate": "END",
    }


def rankings(*pairs: tuple[int, float], usage: dict[str, Any] | None = None) -> httpx.Response:
    payload: dict[str, Any] = {"rankings": [{"index": i, "logit": s} for i, s in pairs]}
    if usage is not None:
        payload["usage"] = usage
    return httpx.Response(200, json=payload, headers={"nvcf-reqid": "nvcf-1"})


# --- URLs and bodies (prepare: no I/O) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire_model", "base", "url"),
    [
        (HOSTED, None, HOSTED_URL),
        (HOSTED, "https://ai.api.nvidia.com", HOSTED_URL),
        (HOSTED, "https://ai.api.nvidia.com/v1", HOSTED_URL),
        (HOSTED, "https://ai.api.nvidia.com/v1/", HOSTED_URL),
        (HOSTED, "https://gw.example.com/nim", f"https://gw.example.com/nim/v1/retrieval/{HOSTED}/reranking"),
        ("nvidia/nv-rerankqa-mistral-4b-v3", "https://ai.api.nvidia.com/v1/retrieval/nvidia/reranking",
         "https://ai.api.nvidia.com/v1/retrieval/nvidia/reranking"),
        (RANKING, None, "https://ai.api.nvidia.com/v1/ranking"),
        (RANKING, "http://nim:8000", "http://nim:8000/v1/ranking"),
        (RANKING, "http://nim:8000/v1", "http://nim:8000/v1/ranking"),
        (RANKING, "http://nim:8000/v1/ranking/", "http://nim:8000/v1/ranking"),
    ],
)  # fmt: skip
def test_url(wire_model: str, base: str | None, url: str) -> None:
    wire = single(ADAPTER, nim(wire_model, base), request())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
LONG = " ".join(f"w{i}" for i in range(10))


@pytest.mark.parametrize(
    ("wire_model", "overrides", "expected"),
    [
        pytest.param(HOSTED, {}, body(["solar power plants", "coffee"]), id="hosted-model-dotted"),
        pytest.param(RANKING, {}, body(["solar power plants", "coffee"]), id="ranking-model-after-prefix"),
        pytest.param("ranking/acme/re_ranker_1", {}, body(TEXTS, "acme/re_ranker_1"),
                     id="ranking-keeps-underscores"),
        pytest.param(HOSTED, {"top_n": 1, "return_documents": True}, body(TEXTS),
                     id="no-top_k-no-return_documents"),
        pytest.param(HOSTED, {"documents": OBJECTS},
                     body(["title: Solar panels\ntext: Photovoltaic cells",
                           "title: Coffee\ntext: Espresso\nyear: 2020"]), id="objects-all-fields-but-id"),
        pytest.param(HOSTED, {"documents": OBJECTS, "rank_fields": ["text"]},
                     body(["Photovoltaic cells", "Espresso"]), id="objects-rank_fields"),
        pytest.param(HOSTED, {"documents": [LONG, "solar"], "max_tokens_per_doc": 3},
                     body(["w0 w1 w2", "solar"]), id="max_tokens_per_doc-client-side"),
        pytest.param(RANKING, {"documents": [LONG, "solar"], "max_tokens_per_doc": 4, "max_chunks_per_doc": 2,
                               "top_n": 1},
                     body(["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]), id="max_chunks_per_doc-client-side"),
    ],
)  # fmt: skip
def test_body(wire_model: str, overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, nim(wire_model), request(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None  # what the NIM schema accepts


def test_more_than_512_passages_are_split() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(1030)]
    sizes = [len(w.body["passages"]) for w in wires(ADAPTER, nim(), request(documents=docs, top_n=5))]
    assert sizes == [512, 512, 6]
    assert nvidia_nim.CAPABILITIES.max_documents == 512


def test_capabilities_are_text_only_and_top_n_client_side() -> None:
    for wire_model in (HOSTED, RANKING):
        caps = ADAPTER.capabilities(nim(wire_model))
        assert (caps.object_documents, caps.top_n, caps.max_tokens_per_doc, caps.max_chunks_per_doc) == (
            False, False, False, False,
        )  # fmt: skip


def test_env_names_are_litellms() -> None:
    found = credentials_from({"NVIDIA_NIM_API_KEY": "k", "NVIDIA_NIM_API_BASE": "http://nim:8000"})[
        "nvidia_nim"
    ]
    assert found.api_key is not None and found.api_key.get_secret_value() == "k"
    assert found.api_base == "http://nim:8000"
    assert (ADAPTER.provider, ADAPTER.default_base) == ("nvidia_nim", "https://ai.api.nvidia.com")


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_sends_bearer_and_parses_raw_logits_sorted_and_cut() -> None:
    mock = Mock(rankings((2, 3.25), (0, -1.5), (1, -7.0), usage={"prompt_tokens": 40, "total_tokens": 40}))
    docs: list[Document] = ["a", "b", "c"]
    response, _ = await rerank(ADAPTER, nim(), request(documents=docs, top_n=2), mock)
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == ("POST", HOSTED_URL)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert "top_k" not in mock.bodies()[0]
    assert response.results == [RankedDocument(2, 3.25), RankedDocument(0, -1.5)]
    assert response.usage == {"tokens": {"prompt_tokens": 40, "total_tokens": 40}}
    assert response.response_id is None  # NIM bodies carry no id


async def test_unsorted_rankings_are_sorted_and_missing_usage_is_none() -> None:
    response, _ = await rerank(ADAPTER, nim(RANKING), request(top_n=1), Mock(rankings((0, -2.0), (1, 0.5))))
    assert response.results == [RankedDocument(1, 0.5)]
    assert response.usage is None  # never made up (LiteLLM reports the result count)


async def test_split_requests_merge_onto_the_callers_indices() -> None:
    docs: list[Document] = [f"doc {i}" for i in range(515)]
    mock = Mock(
        # the ranking endpoint takes no top_k: each answer ranks every passage it was sent
        rankings(
            (10, 1.0), (0, -3.0), *((i, -20.0) for i in range(1, 512) if i != 10), usage={"total_tokens": 100}
        ),
        rankings((2, 4.5), (1, -9.0), (0, -20.0), usage={"total_tokens": 7}),
    )
    response, _ = await rerank(ADAPTER, nim(), request(documents=docs, top_n=3), mock)
    assert [len(b["passages"]) for b in mock.bodies()] == [512, 3]
    assert response.results == [RankedDocument(514, 4.5), RankedDocument(10, 1.0), RankedDocument(0, -3.0)]
    assert (response.requests, response.usage) == (2, {"tokens": {"total_tokens": 107}})


async def test_self_hosted_base_needs_no_key_and_sends_no_header() -> None:
    mock = Mock(rankings((0, 1.0), (1, 0.0)))
    await rerank(ADAPTER, nim(RANKING, base="http://nim:8000", key=None), request(), mock)
    assert "authorization" not in mock.requests[0].headers


@pytest.mark.parametrize(
    ("wire_model", "base"),
    [
        (HOSTED, None),
        (RANKING, None),
        (RANKING, "https://ai.api.nvidia.com"),
        (HOSTED, "https://x.api.nvidia.com/"),
    ],
)
async def test_hosted_api_without_key_is_configuration_error(wire_model: str, base: str | None) -> None:
    await check_missing_setting(ADAPTER, nim(wire_model, base, key=None), request(), ("NVIDIA_NIM_API_KEY",))


NVCF_ERROR = {"type": "about:blank", "status": 400, "title": "Bad Request", "detail": "passages: too many",
              "requestId": "nvcf-err-1"}  # fmt: skip


async def test_error_mapping_in_nvcf_envelope() -> None:
    ok = rankings((0, 1.0), (1, 0.5))
    await check_error_mapping(ADAPTER, nim(), request(), NVCF_ERROR, "passages: too many", ok)
    exc, _ = await failure(ADAPTER, nim(), request(), Mock(httpx.Response(422, json=NVCF_ERROR)))
    assert exc.request_id == "nvcf-err-1"  # from the problem details' requestId


async def test_end_of_life_410_is_invalid_request_with_nvidias_message() -> None:
    detail = "Model nvidia/llama-3.2-nv-rerankqa-1b-v2 reached its end of life on 2026-05-18"
    gone = {"type": "about:blank", "status": 410, "title": "Gone", "detail": detail}
    mock = Mock(httpx.Response(410, json=gone), rankings((0, 1.0)))
    exc, waits = await failure(ADAPTER, nim(), request(), mock, max_attempts=3)
    assert isinstance(exc, InvalidRequestError)
    assert (exc.code, exc.status, exc.retryable) == ("invalid_request", 410, False)
    assert exc.message == detail
    assert (len(mock.requests), waits) == (1, [])


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"rankings": [{"index": 5, "logit": 1.0}]}, id="index-past-end"),
        pytest.param({"rankings": [{"index": 0, "score": 1.0}]}, id="no-logit"),
        pytest.param({"results": [{"index": 0, "relevance_score": 1.0}]}, id="cohere-shape"),
        pytest.param(
            {"rankings": [{"index": 0, "logit": 1.0}, {"index": 0, "logit": 2.0}]}, id="repeated-index"
        ),
    ],
)
async def test_wrong_shape_is_bad_response(payload: dict[str, Any]) -> None:
    exc, _ = await failure(ADAPTER, nim(), request(), Mock(httpx.Response(200, json=payload)))
    assert isinstance(exc, BadResponseError)


# --- against the local NIM server -----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[NimServer]:
    with nim_server(KEY, gone=frozenset({"nvidia/nv-rerankqa-mistral-4b-v3"})) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        yield http


def reranker(client: httpx.AsyncClient, base: str, key: str | None = KEY) -> Reranker:
    transport = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(transport, {"nvidia_nim": nim(base=base, key=key).credentials})


@pytest.mark.parametrize("wire_model", [HOSTED, RANKING])
async def test_wire_server_round_trip(server: NimServer, client: httpx.AsyncClient, wire_model: str) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker(client, server.base_url).rerank(
        f"nvidia_nim/{wire_model}", request(documents=docs)
    )
    (seen,) = server.requests
    assert seen.status == 200
    assert seen.path == ("/v1/ranking" if wire_model == RANKING else f"/v1/retrieval/{HOSTED}/reranking")
    assert seen.body == body(["coffee beans", "solar power plants", "title: solar farms"])
    assert response.results == [RankedDocument(1, logit(1.0)), RankedDocument(2, logit(0.5)),
                                RankedDocument(0, logit(0.0))]  # fmt: skip
    assert response.results[-1].relevance_score < 0  # raw logits
    assert response.usage == {"tokens": {"prompt_tokens": 14, "total_tokens": 14}}


async def test_wire_server_rejects_what_nim_rejects(server: NimServer, client: httpx.AsyncClient) -> None:
    url, auth = f"{server.base_url}/v1/ranking", {"authorization": f"Bearer {KEY}"}
    good = body(["a"])
    for bad, named in [
        ({**good, "top_k": 1}, "top_k"),
        ({**good, "passages": ["a"]}, "passages"),
        ({**good, "truncate": "START"}, "truncate"),
        ({**good, "passages": [{"text": "a"}] * 513}, "512"),
    ]:
        answer = await client.post(url, json=bad, headers=auth)
        assert (answer.status_code, named in answer.json()["detail"]) == (422, True), bad
    long = {**good, "passages": [{"text": " ".join(f"w{i}" for i in range(600))}], "truncate": "NONE"}
    assert (await client.post(url, json=long, headers=auth)).status_code == 400
    assert (await client.post(url, json={**long, "truncate": "END"}, headers=auth)).status_code == 200
    answer = await client.post(url, json=good)
    assert (answer.status_code, answer.json()["title"], "nvcf-reqid" in answer.headers) == (
        401,
        "Unauthorized",
        True,
    )


async def test_wire_server_end_of_life_and_wrong_key(server: NimServer, client: httpx.AsyncClient) -> None:
    eol = reranker(client, server.base_url)
    with pytest.raises(InvalidRequestError) as gone:
        await eol.rerank("nvidia_nim/nvidia/nv-rerankqa-mistral-4b-v3", request())
    assert gone.value.status == 410
    assert "end of life" in gone.value.message
    with pytest.raises(AuthenticationError) as denied:
        await reranker(client, server.base_url, key="wrong").rerank(f"nvidia_nim/{HOSTED}", request())
    assert (denied.value.status, denied.value.message) == (401, "Authentication failed")


@pytest.mark.integration
def test_end_to_end_through_worker(redis_url: str, tmp_path: Path) -> None:
    with nim_server(api_key=None) as server:  # a self-hosted NIM: no key anywhere
        lines = e2e_lines(f"nvidia_nim/{RANKING}")
        env = e2e_env(NVIDIA_NIM_API_BASE=f"{server.base_url}/v1", NVIDIA_NIM_API_KEY="")
        results, errors = run_batch(redis_url, lines, tmp_path, env)
    assert errors == []
    assert [r["id"] for r in results] == [line["id"] for line in lines]
    for line, record in zip(lines, results, strict=True):
        assert record["results"] == expected_results(line, lambda q, t: logit(score(q, t)))
        assert record.get("metadata", "absent") == line.get("metadata", "absent")
        assert record["usage"]["tokens"]["total_tokens"] > 0
    assert {(r.path, r.status) for r in server.requests} == {("/v1/ranking", 200)}
    assert all("authorization" not in r.headers for r in server.requests)
    bodies = {r.body["query"]["text"]: r.body for r in server.requests}
    assert bodies["river delta"]["passages"][1] == {
        "text": "title: River delta\nbody: where a river meets the sea"
    }
    assert all(
        check(b) is None and b["model"] == "nvidia/llama-3.2-nv-rerankqa-1b-v2" for b in bodies.values()
    )
