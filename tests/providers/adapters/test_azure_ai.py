"""azure_ai adapter: URL rules and the Cohere version they select, bodies, splitting, Cohere's
messages; the local Azure deployment.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import azure.core.credentials
import azure.core.exceptions
import azure.identity
import httpx
import pytest
from pydantic import SecretStr

from providers.adapter import HttpAdapter
from providers.adapters import cohere
from providers.adapters.azure_ai import ADAPTER, rerank_url
from providers.auth.azure_entra import REFRESH_MARGIN, SCOPE, AzureEntraAuth, Token, fetch_token
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, ConfigurationError, InvalidRequestError
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, reranker_for, serving, single
from tests.cases.azure_ai import FOUNDRY, KEY, SERVERLESS, VERSION, WIRE_MODEL, dep, ok
from tests.cases.case import QUERY, TEXTS, req
from tests.servers.azure_ai import AzureAIServer

HEAD = {"model": WIRE_MODEL, "query": QUERY}

OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells turn light into power."},
    {"id": "b", "title": "Coffee", "text": "Espresso is brewed under pressure."},
]
LONG = " ".join(f"w{i}" for i in range(10))


# --- what goes on the wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "url", "version"),
    [
        (SERVERLESS, f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v1", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v1/rerank", f"{SERVERLESS}/v1/rerank", 1),
        (f"{SERVERLESS}/v2", f"{SERVERLESS}/v2/rerank", 2),
        (f"{SERVERLESS}/v2/rerank/", f"{SERVERLESS}/v2/rerank", 2),
        (FOUNDRY, f"{FOUNDRY}/rerank", 2),
        (f"{FOUNDRY}{VERSION}", f"{FOUNDRY}/rerank{VERSION}", 2),
        (f"{FOUNDRY}/rerank{VERSION}", f"{FOUNDRY}/rerank{VERSION}", 2),
        (f"{SERVERLESS}{VERSION}", f"{SERVERLESS}/v1/rerank{VERSION}", 1),
        ("https://gw.example.com/apiv2", "https://gw.example.com/apiv2/v1/rerank", 1),
    ],
)
def test_url_rules_and_the_version_they_select(base: str, url: str, version: int) -> None:
    assert rerank_url(base) == (url, version)
    wire = single(ADAPTER, dep(base), req())
    assert (wire.method, wire.url) == ("POST", url)
    assert ADAPTER.capabilities(dep(base)) == (cohere.V1 if version == 1 else cohere.V2)


@pytest.mark.parametrize(
    ("base", "overrides", "body"),
    [
        pytest.param(
            SERVERLESS, {}, {**HEAD, "documents": TEXTS, "return_documents": False}, id="v1-strings"
        ),
        pytest.param(
            SERVERLESS,
            {"documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_chunks_per_doc": 3,
             "return_documents": True},
            {**HEAD, "documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_chunks_per_doc": 3,
             "return_documents": False},
            id="v1-objects-rank_fields-max_chunks-native",
        ),
        pytest.param(
            SERVERLESS,
            {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3},
            {**HEAD, "documents": ["w0 w1 w2", "w0 w1 w2"], "return_documents": False},
            id="v1-max_tokens_per_doc-truncated-here",
        ),
        pytest.param(
            FOUNDRY,
            {"documents": OBJECTS, "rank_fields": ["title"], "top_n": 1, "max_tokens_per_doc": 512},
            {**HEAD, "documents": ["title: Solar panels", "title: Coffee"], "top_n": 1,
             "max_tokens_per_doc": 512},
            id="v2-objects-rendered-max_tokens-native",
        ),
    ],
)  # fmt: skip
def test_body_follows_the_cohere_version(base: str, overrides: dict[str, Any], body: dict[str, Any]) -> None:
    assert single(ADAPTER, dep(base), req(**overrides)).body == body


# --- what comes back --------------------------------------------------------------------------------


async def test_split_results_map_back_and_usage_adds_up() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(cohere.MAX_DOCUMENTS + 3)]
    mock = Mock(ok([(7, 0.4), (1, 0.2)]), ok([(2, 0.9), (0, 0.1)]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=2), mock)
    assert response.results == [RankedDocument(cohere.MAX_DOCUMENTS + 2, 0.9), RankedDocument(7, 0.4)]
    assert (response.requests, response.response_id, response.request_id) == (2, "resp-az", "req-az")
    assert response.usage == {"billed_units": {"search_units": 2}}


async def test_coheres_own_refusals_keep_coheres_message() -> None:
    """Body errors come from Cohere behind Azure's gateway, in Cohere's envelope."""
    body = {"message": "invalid request: unknown field: parameter max_chunks_per_doc is not a valid field"}
    exc, _ = await failure(ADAPTER, dep(FOUNDRY), req(), Mock(httpx.Response(400, json=body)))
    assert isinstance(exc, InvalidRequestError) and exc.message == body["message"]


# --- against the local Azure deployment -------------------------------------------------------------


server = serving(lambda: AzureAIServer(KEY))


async def test_round_trip_v1_with_objects(server: AzureAIServer, client: httpx.AsyncClient) -> None:
    reranker = reranker_for(client, dep(server.base_url))
    docs: list[Document] = [{"title": "coffee", "text": "solar"}, {"title": "solar power", "text": "x"}]
    response = await reranker.rerank(f"azure_ai/{WIRE_MODEL}", req(documents=docs, rank_fields=["title"]))
    (seen,) = server.requests
    assert (seen.path, seen.status) == ("/v1/rerank", 200)
    assert seen.body == {**HEAD, "documents": docs, "rank_fields": ["title"], "return_documents": False}
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(0, 0.0)]
    assert response.request_id == seen.request_id


async def test_local_deployment_refuses_what_cohere_refuses(
    server: AzureAIServer, client: httpx.AsyncClient
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    v2 = f"{server.base_url}/providers/cohere/v2/rerank{VERSION}"
    good = {**HEAD, "documents": ["a"]}
    for url, body, named in [
        (v2, {**good, "max_chunks_per_doc": 2}, "max_chunks_per_doc"),
        (v2, {**good, "documents": [{"text": "a"}]}, "strings"),
        (f"{server.base_url}/v1/rerank", {**good, "max_tokens_per_doc": 5}, "max_tokens_per_doc"),
    ]:
        answer = await client.post(url, json=body, headers=auth)
        assert answer.status_code == 400, body
        assert named in answer.json()["message"]
    answer = await client.post(v2, json=good, headers={"authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "Unauthorized")


# --- Microsoft Entra ID tokens ----------------------------------------------------------------------------

PRINCIPAL = {"tenant_id": "tenant-1", "client_id": "client-1", "client_secret": SecretStr("s3cret")}


class FakeEntra:
    """Issues numbered tokens living ``lifetime`` seconds and records what each fetch was for."""

    def __init__(self, clock: list[float], lifetime: float = 3600.0) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.fetches: list[tuple[tuple[str, str, str] | None, str]] = []

    def __call__(self, secret: tuple[str, str, str] | None, scope: str) -> Token:
        self.fetches.append((secret, scope))
        return Token(f"entra-token-{len(self.fetches)}", self.clock[0] + self.lifetime)


def entra(server: AzureAIServer, **params: Any) -> Deployment:
    keyless = dep(base=f"{server.base_url}/v2", key=None)
    return replace(keyless, credentials=replace(keyless.credentials, params=params))


def fetching(client: httpx.AsyncClient, clock: list[float]) -> tuple[HttpAdapter, Dispatcher, FakeEntra]:
    """The adapter with its tokens from a :class:`FakeEntra` on ``clock``, and a dispatcher."""
    fake = FakeEntra(clock)
    adapter = replace(ADAPTER, auth=AzureEntraAuth(fetch=fake, clock=lambda: clock[0]))
    return adapter, Dispatcher(client, RetryPolicy(max_attempts=1)), fake


async def test_a_fetched_token_is_shared_by_concurrent_lines_and_fetched_again_before_expiry(
    server: AzureAIServer, client: httpx.AsyncClient
) -> None:
    clock = [1_000_000.0]
    adapter, transport, fake = fetching(client, clock)
    server.tokens |= {"entra-token-1", "entra-token-2"}
    d = entra(server, **PRINCIPAL)
    await asyncio.gather(*(transport.rerank(adapter, d, req()) for _ in range(5)))
    assert fake.fetches == [(("tenant-1", "client-1", "s3cret"), SCOPE)]
    clock[0] += 3600 - REFRESH_MARGIN + 1  # inside the margin: fetched again
    await transport.rerank(adapter, d, req())
    assert len(fake.fetches) == 2
    assert [r.headers["authorization"] for r in server.requests][-2:] == [
        "Bearer entra-token-1",
        "Bearer entra-token-2",
    ]
    assert all(r.status == 200 for r in server.requests)


async def test_a_ready_token_or_a_scope_for_the_default_credential(
    server: AzureAIServer, client: httpx.AsyncClient
) -> None:
    adapter, transport, fake = fetching(client, [0.0])
    server.tokens |= {"ready-token", "entra-token-1"}
    await transport.rerank(adapter, entra(server, azure_ad_token=SecretStr("ready-token")), req())
    await transport.rerank(adapter, entra(server, azure_scope="api://custom/.default"), req())
    assert fake.fetches == [(None, "api://custom/.default")]  # DefaultAzureCredential, opted into
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer ready-token",
        "Bearer entra-token-1",
    ]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "AZURE_AI_API_KEY"),  # a forgotten key fails at once: no credential chain is probed
        ({"tenant_id": "t", "client_id": "c"}, "client_secret"),
    ],
)
async def test_without_a_key_or_a_complete_entra_set_up_nothing_is_sent(
    params: dict[str, Any], named: str
) -> None:
    mock = Mock(ok([(0, 0.5)]))
    keyless = dep(key=None)
    d = replace(keyless, credentials=replace(keyless.credentials, params=params))
    with pytest.raises(ConfigurationError) as raised:
        await rerank(ADAPTER, d, req(), mock)
    assert named in raised.value.message and mock.requests == []


async def test_a_refused_token_request_is_an_authentication_error_without_the_secret() -> None:
    def refuse(secret: tuple[str, str, str] | None, scope: str) -> Token:
        raise azure.core.exceptions.ClientAuthenticationError(
            "AADSTS7000215: Invalid client secret provided."
        )

    adapter = replace(ADAPTER, auth=AzureEntraAuth(fetch=refuse))
    keyless = dep(key=None)
    d = replace(keyless, credentials=replace(keyless.credentials, params=PRINCIPAL))
    mock = Mock(ok([(0, 0.5)]))
    error, _ = await failure(adapter, d, req(), mock)
    assert isinstance(error, AuthenticationError) and "AADSTS7000215" in error.message
    assert "s3cret" not in str(error) and mock.requests == []


def test_fetch_token_asks_azure_identity_for_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, Any]] = []

    class Credential:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            asked.append(("made", args or kwargs))

        def get_token(self, scope: str) -> Any:
            asked.append(("token", scope))
            return azure.core.credentials.AccessToken("t", 1234)

    monkeypatch.setattr(azure.identity, "ClientSecretCredential", Credential)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Credential)
    assert fetch_token(("t", "c", "s"), SCOPE) == Token("t", 1234.0)
    assert fetch_token(None, "x/.default") == Token("t", 1234.0)
    default = {"exclude_interactive_browser_credential": True}
    assert asked == [("made", ("t", "c", "s")), ("token", SCOPE), ("made", default), ("token", "x/.default")]
