"""watsonx adapter and auth: URLs, bodies, tokens / Zen keys / the IBM IAM exchange (shared,
cached, refreshed), parsing; the local watsonx.ai and IAM.  (What every provider does alike:
test_contract.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from providers.adapters.watsonx import ADAPTER
from providers.auth.watsonx_iam import WatsonxAuth
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher, prepare
from providers.errors import AuthenticationError, InvalidRequestError, ServerError
from providers.retry import RetryPolicy
from providers.types import RankedDocument
from tests.adapter_kit import FakeSleep, Mock, rerank, reranker_for, single
from tests.cases.case import QUERY, TEXTS, req
from tests.cases.watsonx import API_KEY, BASE, PROJECT, TOKEN, URL, ZEN, dep, inputs, ok
from tests.servers.watsonx import MODEL, IamServer, WatsonxServer, logit, problem
from tests.wire_server import unavailable

HEAD = {"model_id": MODEL, "query": QUERY, "project_id": PROJECT}

LONG = " ".join(f"w{i}" for i in range(10))


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


# --- bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "overrides", "body"),
    [
        pytest.param(
            dep(), {"documents": [LONG], "max_tokens_per_doc": 3, "top_n": 1},
            {**HEAD, "inputs": inputs(LONG),
             "parameters": {"return_options": {"top_n": 1}, "truncate_input_tokens": 3}},
            id="max_tokens_per_doc-native",
        ),
        pytest.param(
            dep(project_id=None, space_id="space-1"), {},
            {"model_id": MODEL, "query": "solar power", "space_id": "space-1", "inputs": inputs(*TEXTS)},
            id="space",
        ),
        pytest.param(
            dep(space_id="space-1"), {}, {**HEAD, "inputs": inputs(*TEXTS)}, id="project-wins-over-space"
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


# --- the IBM IAM exchange, against local IAM and watsonx.ai servers ----------------------------------


@pytest.fixture
def iam() -> Iterator[IamServer]:
    with IamServer(api_keys=[API_KEY]) as running:
        yield running


@pytest.fixture
def server(iam: IamServer) -> Iterator[WatsonxServer]:
    with WatsonxServer(iam=iam, project_id=PROJECT, deployments=[DEPLOYED]) as running:
        yield running


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


# --- deployed models: watsonx/deployment/<id> ------------------------------------------------------------

DEPLOYED = "8f2c7a1e-rerank"


def deployed(base: str = BASE, deployment_id: str = DEPLOYED, **params: Any) -> Deployment:
    """A deployed model: no project or space needed."""
    return dataclasses.replace(dep(base, project_id=None, **params), wire_model=f"deployment/{deployment_id}")


@pytest.mark.parametrize(
    ("base", "url"),
    [
        (BASE, f"{BASE}/ml/v1/deployments/{DEPLOYED}/text/rerank?version=2024-05-31"),
        (f"{BASE}/ml/v1/text/rerank", f"{BASE}/ml/v1/deployments/{DEPLOYED}/text/rerank?version=2024-05-31"),
    ],
)
def test_a_deployed_model_goes_to_its_deployment_without_model_or_project(base: str, url: str) -> None:
    wire = single(ADAPTER, deployed(base), req(top_n=1))
    assert wire.url == url
    assert wire.body == {
        "query": QUERY,
        "inputs": inputs(*TEXTS),
        "parameters": {"return_options": {"top_n": 1}},
    }


async def test_a_deployed_model_ranks_at_the_local_api(
    server: WatsonxServer, client: httpx.AsyncClient
) -> None:
    server.tokens.add(TOKEN)
    reranker = reranker_for(client, deployed(server.base_url))
    response = await reranker.rerank(f"watsonx/deployment/{DEPLOYED}", req())
    (seen,) = server.requests
    assert (seen.status, seen.path.split("?")[0]) == (200, f"/ml/v1/deployments/{DEPLOYED}/text/rerank")
    assert [r.index for r in response.results] == [0, 1]
    with pytest.raises(InvalidRequestError) as unknown:
        await reranker.rerank("watsonx/deployment/no-such-id", req())
    assert (unknown.value.status, "does not exist" in unknown.value.message) == (404, True)


async def test_the_local_api_refuses_a_model_or_project_on_a_deployment(
    server: WatsonxServer, client: httpx.AsyncClient
) -> None:
    url = f"{server.base_url}/ml/v1/deployments/{DEPLOYED}/text/rerank?version=2024-05-31"
    body = {"query": QUERY, "inputs": inputs(*TEXTS), "project_id": PROJECT}
    server.tokens.add(TOKEN)
    answer = await client.post(url, json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert (answer.status_code, "project_id" in answer.json()["errors"][0]["message"]) == (400, True)
