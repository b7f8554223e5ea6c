"""Strict response contracts: an answer is a correct ranking of the documents sent, or a typed
``bad_response`` carrying the provider, status and request id -- never a wrong success."""

from __future__ import annotations

import asyncio
import gzip
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from providers import contract
from providers.adapter import HttpAdapter
from providers.adapters import cohere, huggingface, nvidia_nim, vertex_ai
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher
from providers.errors import BadResponseError, RateLimitedError
from providers.retry import RetryPolicy
from providers.types import RankedDocument, RerankRequest, RerankResponse
from tests.adapter_kit import Mock, deployment, failure, rerank

DOCS = ["solar power plants", "coffee", "wind farms", "tea"]
COHERE = deployment("cohere", "rerank-v3.5", key="k")


def request(top_n: int | None = None, documents: list[str] | None = None) -> RerankRequest:
    return RerankRequest(query="solar power", documents=documents or DOCS, top_n=top_n)


def answer(body: Any, request_id: str = "req-7") -> httpx.Response:
    return httpx.Response(200, content=orjson.dumps(body), headers={"x-request-id": request_id})


def results(*pairs: tuple[Any, Any]) -> dict[str, Any]:
    return {"results": [{"index": i, "relevance_score": s} for i, s in pairs]}


async def bad(body: Any, r: RerankRequest | None = None) -> BadResponseError:
    error, _ = await failure(cohere.ADAPTER, COHERE, r or request(), Mock(answer(body)))
    assert isinstance(error, BadResponseError)
    assert (error.code, error.provider, error.status, error.request_id) == (
        "bad_response",
        "cohere",
        200,
        "req-7",
    )
    return error


# --- each coercion the old parser made ------------------------------------------------------------

ALL = [(1, 0.9), (0, 0.8), (2, 0.1), (3, 0.0)]


@pytest.mark.parametrize(
    ("index", "why"),
    [
        (1.9, "is a float, not an integer"),
        (0.2, "is a float, not an integer"),
        (1.0, "is a float, not an integer"),
        ("0", "is a str, not an integer"),
        (True, "is a boolean, not an integer"),
        (None, "is a NoneType, not an integer"),
    ],
)
async def test_an_index_that_is_not_a_json_integer_is_a_bad_response(index: Any, why: str) -> None:
    error = await bad(results((index, 0.95), *ALL[1:]), request(top_n=2))
    assert why in error.message


@pytest.mark.parametrize(
    ("score", "why"),
    [
        ("0.5", "is a str, not a number"),
        (True, "is a boolean, not a number"),
        ([1], "is a list, not a number"),
    ],
)
async def test_a_score_that_is_not_a_json_number_is_a_bad_response(score: Any, why: str) -> None:
    error = await bad(results((0, score), (1, 0.3)), request(top_n=2))
    assert why in error.message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(value: float) -> None:
    with pytest.raises(contract.ContractError, match="not a finite number"):
        contract.score(value)
    # JSON cannot carry them: a provider writing NaN or 1e999 sends a body that is not JSON
    with pytest.raises(contract.ContractError):
        contract.check([RankedDocument(0, value)], request(top_n=1))


async def test_nan_on_the_wire_is_a_bad_response() -> None:
    body = b'{"results": [{"index": 0, "relevance_score": NaN}]}'
    mock = Mock(httpx.Response(200, content=body, headers={"x-request-id": "req-7"}))
    error, _ = await failure(cohere.ADAPTER, COHERE, request(top_n=1), mock)
    assert (error.code, error.request_id) == ("bad_response", "req-7")


@pytest.mark.parametrize(
    ("body", "top_n", "why"),
    [
        (results(), None, "no results for 4 documents"),
        (results(), 2, "no results for 4 documents"),
        (results((0, 0.9), (1, 0.2)), None, "2 results for 4 documents, all of them asked for"),
        (results((4, 0.9), (0, 0.2)), 2, "index 4 is outside the 4 documents"),
        (results((-1, 0.9), (0, 0.2)), 2, "index -1 is outside"),
        (results((1, 0.9), (1, 0.2)), 2, "index 1 appears more than once"),
        (results(*ALL, (0, 0.5)), None, "index 0 appears more than once"),
        ({"results": {"index": 0}}, 1, "'results' is a dict, not a list"),
        ([{"index": 0, "relevance_score": 1.0}], 1, "AttributeError"),
        ({"results": [{"index": 0}]}, 1, "KeyError"),
    ],
)
async def test_lying_counts_and_shapes_are_bad_responses(body: Any, top_n: int | None, why: str) -> None:
    error = await bad(body, request(top_n=top_n))
    assert why in error.message


async def test_a_complete_honest_answer_still_ranks() -> None:
    response, _ = await rerank(cohere.ADAPTER, COHERE, request(), Mock(answer(results(*ALL))))
    assert [r.index for r in response.results] == [1, 0, 2, 3]
    response, _ = await rerank(cohere.ADAPTER, COHERE, request(top_n=2), Mock(answer(results(*ALL[:1]))))
    assert response.results == [RankedDocument(1, 0.9)]  # fewer than top_n: the provider stopped early


def test_integer_scores_are_numbers() -> None:
    assert contract.score(3) == 3.0 and isinstance(contract.score(3), float)


@pytest.mark.parametrize("record_id", ["01", " 1", "1.0", "+1", "١", 1, None])
def test_vertex_ids_must_be_the_ids_sent(record_id: Any) -> None:
    body = {"records": [{"id": record_id, "score": 0.5}]}
    with pytest.raises(contract.ContractError, match="is not one of the ids sent"):
        vertex_ai.parse_response(body, request(top_n=1))
    parsed = vertex_ai.parse_response({"records": [{"id": "3"}]}, request(top_n=1))
    assert parsed.results == [RankedDocument(3, 0.0)]  # proto3 JSON leaves a zero score out


def test_an_adapter_may_declare_that_it_answers_with_a_subset() -> None:
    subset = [RankedDocument(2, 0.5)]
    contract.check(subset, request(), may_omit=True)
    with pytest.raises(contract.ContractError, match="no results"):
        contract.check([], request(), may_omit=True)


# --- the response size cap ----------------------------------------------------------------------------


class Endless:
    """A body of ``total`` bytes made on demand, counting what was pulled from it."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b" " * self.chunk


async def send_through(handler: Callable[[httpx.Request], httpx.Response], cap: int) -> RerankResponse:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=1), max_response_bytes=cap)
        return await dispatcher.rerank(cohere.ADAPTER, COHERE, request())


async def test_a_100_mb_body_is_refused_after_reading_just_past_the_cap() -> None:
    body = Endless(100 * 1024 * 1024)
    with pytest.raises(BadResponseError) as raised:
        await send_through(
            lambda _r: httpx.Response(200, content=body, headers={"x-request-id": "r"}), 1 << 20
        )
    assert "at most 1048576 are read" in raised.value.message
    assert (raised.value.status, raised.value.request_id) == (200, "r")
    assert body.pulled <= (1 << 20) + body.chunk  # streamed, never held whole


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    body = Endless(8 << 20)
    headers = {"content-length": str(8 << 20)}
    with pytest.raises(BadResponseError, match=f"is {8 << 20} bytes"):
        await send_through(lambda _r: httpx.Response(200, content=body, headers=headers), 1 << 20)
    assert body.pulled == 0


async def test_an_oversized_error_body_keeps_its_status_and_is_cut() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, content=Endless(50 << 20), headers={"retry-after": "1"})

    with pytest.raises(RateLimitedError) as raised:
        await send_through(handler, 1 << 20)
    assert raised.value.body_excerpt is not None and len(raised.value.body_excerpt) <= 300


async def test_an_answer_under_the_cap_is_read_whole_even_when_compressed() -> None:
    payload = orjson.dumps(results(*ALL))
    headers = {"content-encoding": "gzip"}
    response = await send_through(
        lambda _r: httpx.Response(200, content=gzip.compress(payload), headers=headers), 4096
    )
    assert [r.index for r in response.results] == [1, 0, 2, 3]


# --- property: for any body, a bad_response or the right ranking -------------------------------------

JSON_LEAVES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.sampled_from(["0", "1", "0.5", 1.5, 2.0]),
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
INDEX = st.integers(-2, 6) | st.sampled_from([0.0, 1.9, "0", "2", True, False, None])
SCORE = st.floats(-5, 5) | st.integers(-3, 3) | st.sampled_from(["0.5", True, None, [0.1]])


def items(index_key: str, score_key: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    item = st.fixed_dictionaries({index_key: INDEX, score_key: SCORE}) | st.dictionaries(
        st.sampled_from([index_key, score_key, "document"]), JSON, max_size=3
    )
    return st.lists(item, max_size=6)


def honest(
    raw: list[Any], count: int, top_n: int | None, index_key: str, score_key: str
) -> list[RankedDocument] | None:
    """What the contract promises for these raw items: the ranking they stand for, or None."""
    ranked, seen = [], set()
    for item in raw:
        if not isinstance(item, dict) or index_key not in item or score_key not in item:
            return None
        index, score = item[index_key], item[score_key]
        if type(index) is not int or not 0 <= index < count or index in seen:
            return None
        if type(score) not in (int, float) or not math.isfinite(score):
            return None
        seen.add(index)
        ranked.append(RankedDocument(index, float(score)))
    if not ranked or (top_n is None and len(ranked) < count):
        return None
    ranked.sort(key=lambda r: (-r.relevance_score, r.index))
    return ranked if top_n is None else ranked[:top_n]


Shape = tuple[HttpAdapter, Deployment, Callable[[list[Any]], Any], str, str]
SHAPES: dict[str, Shape] = {
    "cohere": (cohere.ADAPTER, COHERE, lambda xs: {"id": "a", "results": xs}, "index", "relevance_score"),
    "nvidia_nim": (
        nvidia_nim.ADAPTER,
        deployment("nvidia_nim", "ranking/m", key="k", base="http://nim.example"),
        lambda xs: {"rankings": xs},
        "index",
        "logit",
    ),
    "huggingface": (
        huggingface.ADAPTER,
        deployment("huggingface", "m", base="http://tei.example"),
        lambda xs: xs,
        "index",
        "score",
    ),
}


def outcome(shape: Shape, body: Any, r: RerankRequest) -> RerankResponse | BadResponseError:
    adapter, d = shape[0], shape[1]

    async def go() -> RerankResponse | BadResponseError:
        async with httpx.AsyncClient(transport=httpx.MockTransport(Mock(answer(body)))) as client:
            try:
                return await Dispatcher(client, RetryPolicy(max_attempts=1)).rerank(adapter, d, r)
            except BadResponseError as exc:
                return exc

    return asyncio.run(go())


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", SHAPES)
@PROPERTY
@given(data=st.data(), count=st.integers(1, 4), top_n=st.none() | st.integers(1, 5))
def test_lying_answers_are_bad_responses_and_honest_ones_rank(
    name: str, data: st.DataObject, count: int, top_n: int | None
) -> None:
    shape = SHAPES[name]
    _, _, wrap, index_key, score_key = shape
    raw = data.draw(items(index_key, score_key))
    r = request(top_n=top_n, documents=DOCS[:count])
    got = outcome(shape, wrap(raw), r)
    # the endpoint's own top_n may not be sent (TEI, NIM ranking): then every document is asked for
    sent = r if shape[0].capabilities(shape[1]).top_n else request(documents=DOCS[:count])
    expected = honest(raw, count, sent.top_n, index_key, score_key)
    if expected is None:
        assert isinstance(got, BadResponseError), got
        assert got.status == 200
    else:
        assert isinstance(got, RerankResponse), got
        assert got.results == (expected if top_n is None else expected[:top_n])


@PROPERTY
@given(body=JSON, count=st.integers(1, 4), top_n=st.none() | st.integers(1, 5))
def test_garbage_bodies_never_succeed_wrongly(body: Any, count: int, top_n: int | None) -> None:
    r = request(top_n=top_n, documents=DOCS[:count])
    got = outcome(SHAPES["cohere"], body, r)
    raw = body.get("results") if isinstance(body, dict) else None
    expected = honest(raw, count, top_n, "index", "relevance_score") if isinstance(raw, list) else None
    if expected is None:
        assert isinstance(got, BadResponseError), got
    else:
        assert isinstance(got, RerankResponse) and got.results == expected
