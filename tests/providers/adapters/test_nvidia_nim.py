"""NVIDIA NIM adapter: both routes' URLs and bodies, raw logits, splitting, end of life; the local
NIM refusing what NIM refuses.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from providers.adapters.nvidia_nim import ADAPTER
from providers.errors import AuthenticationError, ConfigurationError, InvalidRequestError
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, reranker_for, serving, single
from tests.cases.case import TEXTS, req
from tests.cases.nvidia_nim import HOSTED, HOSTED_URL, KEY, RANKING, body, dep, rankings
from tests.servers.nvidia_nim import NimServer, check, logit

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
    wire = single(ADAPTER, dep(wire_model, base), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})
    assert ADAPTER.default_base == "https://ai.api.nvidia.com"


@pytest.mark.parametrize(
    ("wire_model", "overrides", "expected"),
    [
        pytest.param(HOSTED, {}, body(["solar power plants", "coffee"]), id="hosted-model-dotted"),
        pytest.param(RANKING, {}, body(["solar power plants", "coffee"]), id="ranking-model-after-prefix"),
        pytest.param("ranking/acme/re_ranker_1", {}, body(TEXTS, "acme/re_ranker_1"),
                     id="ranking-keeps-underscores"),
    ],
)  # fmt: skip
def test_body(wire_model: str, overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    wire = single(ADAPTER, dep(wire_model), req(**overrides))
    assert wire.body == expected
    assert check(wire.body) is None  # what the NIM schema accepts


# --- the shared HTTP path over MockTransport ----------------------------------------------------------


async def test_raw_logits_are_parsed_sorted_and_cut_and_no_top_k_is_sent() -> None:
    mock = Mock(rankings((2, 3.25), (0, -1.5), (1, -7.0), usage={"prompt_tokens": 40, "total_tokens": 40}))
    docs: list[Document] = ["a", "b", "c"]
    response, _ = await rerank(ADAPTER, dep(), req(documents=docs, top_n=2), mock)
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == ("POST", HOSTED_URL)
    assert "top_k" not in mock.bodies()[0]
    assert response.results == [RankedDocument(2, 3.25), RankedDocument(0, -1.5)]
    assert response.usage == {"tokens": {"prompt_tokens": 40, "total_tokens": 40}}
    assert response.response_id is None  # NIM bodies carry no id


async def test_unsorted_rankings_are_sorted_and_missing_usage_is_none() -> None:
    response, _ = await rerank(ADAPTER, dep(RANKING), req(top_n=1), Mock(rankings((0, -2.0), (1, 0.5))))
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
    response, _ = await rerank(ADAPTER, dep(), req(documents=docs, top_n=3), mock)
    assert [len(b["passages"]) for b in mock.bodies()] == [512, 3]
    assert response.results == [RankedDocument(514, 4.5), RankedDocument(10, 1.0), RankedDocument(0, -3.0)]
    assert (response.requests, response.usage) == (2, {"tokens": {"total_tokens": 107}})


async def test_end_of_life_410_is_invalid_request_with_nvidias_message() -> None:
    detail = "Model nvidia/llama-3.2-nv-rerankqa-1b-v2 reached its end of life on 2026-05-18"
    gone = {"type": "about:blank", "status": 410, "title": "Gone", "detail": detail}
    mock = Mock(httpx.Response(410, json=gone), rankings((0, 1.0)))
    exc, waits = await failure(ADAPTER, dep(), req(), mock, max_attempts=3)
    assert isinstance(exc, InvalidRequestError)
    assert (exc.code, exc.status, exc.retryable) == ("invalid_request", 410, False)
    assert exc.message == detail
    assert (len(mock.requests), waits) == (1, [])


# --- against the local NIM server -----------------------------------------------------------------------


server = serving(lambda: NimServer(KEY, gone=frozenset({"nvidia/nv-rerankqa-mistral-4b-v3"})))


@pytest.mark.parametrize("wire_model", [HOSTED, RANKING])
async def test_wire_server_round_trip(server: NimServer, client: httpx.AsyncClient, wire_model: str) -> None:
    docs: list[Document] = ["coffee beans", "solar power plants", {"title": "solar farms"}]
    response = await reranker_for(client, dep(base=server.base_url)).rerank(
        f"nvidia_nim/{wire_model}", req(documents=docs)
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
    eol = reranker_for(client, dep(base=server.base_url))
    with pytest.raises(InvalidRequestError) as gone:
        await eol.rerank("nvidia_nim/nvidia/nv-rerankqa-mistral-4b-v3", req())
    assert gone.value.status == 410
    assert "end of life" in gone.value.message
    with pytest.raises(AuthenticationError) as denied:
        await reranker_for(client, dep(base=server.base_url, key="wrong")).rerank(
            f"nvidia_nim/{HOSTED}", req()
        )
    assert (denied.value.status, denied.value.message) == (401, "Authentication failed")


# --- the body model, truncate and image passages ---------------------------------------------------------

PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.parametrize(
    ("wire_model", "sent"),
    [
        ("nvidia/llama-3_2-nv-rerankqa-1b-v2", "nvidia/llama-3.2-nv-rerankqa-1b-v2"),
        ("nvidia/llama-3_2-nemoretriever-500m-rerank-v2", "nvidia/llama-3.2-nemoretriever-500m-rerank-v2"),
        ("nvidia/nv-rerankqa-mistral-4b-v3", "nvidia/nv-rerankqa-mistral-4b-v3"),
        ("acme/re_ranker_v1_2", "acme/re_ranker_v1.2"),  # only between digits
        ("acme/my_reranker", "acme/my_reranker"),  # LiteLLM sends acme/my.reranker
    ],
)
def test_only_a_versions_underscore_becomes_a_dot(wire_model: str, sent: str) -> None:
    assert single(ADAPTER, dep(wire_model), req()).body["model"] == sent


async def test_a_model_with_a_real_underscore_reaches_the_hosted_route(
    server: NimServer, client: httpx.AsyncClient
) -> None:
    response = await reranker_for(client, dep(base=server.base_url)).rerank(
        "nvidia_nim/acme/my_reranker", req()
    )
    (seen,) = server.requests
    assert (seen.status, seen.body["model"], len(response.results)) == (200, "acme/my_reranker", 2)


async def test_truncate_none_lets_nim_refuse_an_over_long_passage(
    server: NimServer, client: httpx.AsyncClient
) -> None:
    long = " ".join(f"w{i}" for i in range(600))
    reranker = reranker_for(client, dep(base=server.base_url))
    with pytest.raises(InvalidRequestError) as refused:
        await reranker.rerank(
            f"nvidia_nim/{RANKING}", req(documents=[long], provider_params={"truncate": "NONE"})
        )
    assert "set truncate" in refused.value.message
    cut = await reranker.rerank(f"nvidia_nim/{RANKING}", req(documents=[long]))  # END, by default
    assert [r.status for r in server.requests] == [400, 200] and len(cut.results) == 1
    assert [r.body["truncate"] for r in server.requests] == ["NONE", "END"]


async def test_image_passages_go_to_the_ranking_route_as_images(
    server: NimServer, client: httpx.AsyncClient
) -> None:
    docs: list[Document] = [{"image": PNG}, "solar power plants", {"image": PNG, "text": "solar panel photo"}]
    response = await reranker_for(client, dep(base=server.base_url)).rerank(
        f"nvidia_nim/{RANKING}", req(documents=docs)
    )
    (seen,) = server.requests
    assert seen.status == 200
    assert seen.body["passages"] == [{"image": PNG}, {"text": "solar power plants"},
                                     {"text": "solar panel photo", "image": PNG}]  # fmt: skip
    assert [r.index for r in response.results] == [1, 2, 0]
    assert check({**seen.body}) is not None  # the hosted route's schema takes text only
    assert check(seen.body, images=True) is None


async def test_an_image_where_the_endpoint_ranks_text_only_fails_before_sending() -> None:
    mock = Mock(rankings((0, 1.0)))
    with pytest.raises(ConfigurationError) as refused:
        await rerank(ADAPTER, dep(), req(documents=["a", {"image": PNG}]), mock)
    assert "documents[1] is an image" in refused.value.message
    assert mock.requests == []
