"""together_ai adapter: URLs, bodies and parsing; the local Together API refuses what Together refuses.
(What every provider does alike: test_contract.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from providers.adapters.together_ai import ADAPTER, DEFAULT_BASE
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, rerank, single, wires
from tests.cases.together_ai import HEAD, KEY, STRINGS, WIRE_MODEL, dep, ok, req
from tests.servers.together_ai import TogetherServer, together_server

OBJECTS: list[Document] = [
    {"id": "a", "title": "Llama", "text": "A domesticated South American camelid."},
    {"id": "b", "title": "Panda", "text": "A bear species endemic to China.", "rank": 2},
]
LONG = " ".join(f"w{i}" for i in range(10))


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


# --- against the local Together API -----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TogetherServer]:
    with together_server(KEY, [WIRE_MODEL]) as running:
        yield running


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
