"""vertex_ai adapter and Google auth: URLs, records, tokens (ready, google-auth, refresh), parsing;
the local Ranking API with google-auth.  (What every provider does alike: test_contract.py.)"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2.credentials import Credentials as GoogleCredentials
from pydantic import SecretStr

from providers.adapters.vertex_ai import ADAPTER
from providers.auth import Auth, AuthRequest
from providers.auth.google_oauth import GoogleAuth, load_credentials
from providers.auth.token_cache import TokenCache
from providers.deployment import Deployment
from providers.dispatcher import Dispatcher, prepare
from providers.errors import AuthenticationError, ConfigurationError
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, rerank
from tests.cases.case import req
from tests.cases.vertex_ai import PROJECT, RANK, TOKEN, dep, head, ok
from tests.servers.vertex_ai import GoogleTokenServer, VertexServer

OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar", "body": "photovoltaic power", "year": 2020},
    {"id": "b", "title": 7, "text": "espresso"},
]
LONG = " ".join(f"w{i}" for i in range(10))


# --- URL, project, headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "params", "url"),
    [
        (None, {}, f"https://discoveryengine.googleapis.com{RANK}"),
        ("http://127.0.0.1:9", {}, f"http://127.0.0.1:9{RANK}"),
        ("https://gw.example.com/google/", {}, f"https://gw.example.com/google{RANK}"),
        ("https://gw.example.com/v1", {}, f"https://gw.example.com{RANK}"),
        (f"http://127.0.0.1:9{RANK}", {}, f"http://127.0.0.1:9{RANK}"),
        (None, {"vertex_project": "other-1"},
         "https://discoveryengine.googleapis.com/v1/projects/other-1/locations/global"
         "/rankingConfigs/default_ranking_config:rank"),
        (None, {"vertex_location": "eu"},
         "https://eu-discoveryengine.googleapis.com/v1/projects/test-project/locations/eu"
         "/rankingConfigs/default_ranking_config:rank"),
    ],
)  # fmt: skip
def test_url_honours_api_base(base: str | None, params: dict[str, str], url: str) -> None:
    [(_, wire)] = prepare(ADAPTER, dep(base, **params), req())
    project = params.get("vertex_project", PROJECT)
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {"x-goog-user-project": project})


# --- records ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        pytest.param(
            {"documents": OBJECTS},
            head([{"id": "0", "title": "Solar", "content": "body: photovoltaic power\nyear: 2020"},
                  {"id": "1", "content": "title: 7\ntext: espresso"}]),
            id="objects-title-native-rest-rendered",
        ),
        pytest.param(
            {"documents": [*OBJECTS, "plain"], "rank_fields": ["body", "text"]},
            head([{"id": "0", "content": "body: photovoltaic power"},
                  {"id": "1", "content": "text: espresso"}, {"id": "2", "content": "plain"}]),
            id="rank_fields-without-title",
        ),
        pytest.param(
            {"documents": OBJECTS, "rank_fields": ["title"]},
            head([{"id": "0", "title": "Solar"}, {"id": "1", "content": "title: 7"}]),
            id="rank_fields-title-only",
        ),
        pytest.param(
            {"documents": [LONG, {"title": "t", "text": LONG}], "max_tokens_per_doc": 4},
            head([{"id": "0", "content": "w0 w1 w2 w3"}, {"id": "1", "content": "title: t text: w0"}]),
            id="max_tokens_per_doc-truncated-here-objects-rendered",
        ),
    ],
)  # fmt: skip
def test_body(overrides: dict[str, Any], body: dict[str, Any]) -> None:
    [(_, wire)] = prepare(ADAPTER, dep(), req(**overrides))
    assert wire.body == body


async def test_more_than_200_records_are_split_and_merged() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(203)]
    [(_, first), (_, second)] = prepare(ADAPTER, dep(), req(documents=documents, top_n=2))
    assert [len(w.body["records"]) for w in (first, second)] == [200, 3]
    assert [r["id"] for r in second.body["records"]] == ["0", "1", "2"]
    assert [w.body["topN"] for w in (first, second)] == [2, 2]
    mock = Mock(ok([{"id": "5", "score": 0.5}, {"id": "9", "score": 0.4}]), ok([{"id": "2", "score": 0.8}]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=2), mock)
    assert response.results == [RankedDocument(202, 0.8), RankedDocument(5, 0.5)]


# --- parsing and errors over MockTransport -------------------------------------------------------------


async def test_sends_token_and_parses_records() -> None:
    mock = Mock(ok([{"id": "2", "score": 0.93}, {"id": "0", "score": 0.5}, {"id": "1"}]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=["a", "b", "c"]), mock)
    # a record without score scored 0.0: proto3 JSON leaves zero values out
    assert response.results == [RankedDocument(2, 0.93), RankedDocument(0, 0.5), RankedDocument(1, 0.0)]
    assert (response.usage, response.response_id) == (None, None)
    (sent,) = mock.requests
    assert str(sent.url) == f"https://discoveryengine.googleapis.com{RANK}"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["x-goog-user-project"] == PROJECT


async def test_top_n_is_cut_client_side_too() -> None:
    mock = Mock(ok([{"id": "1", "score": 0.7}, {"id": "0", "score": 0.6}]))
    response, _ = await rerank(ADAPTER, dep(), req(top_n=1), mock)
    assert response.results == [RankedDocument(1, 0.7)]


# --- Google auth --------------------------------------------------------------------------------------


class CountingCredentials(GoogleCredentials):
    """Google user credentials whose refresh mints a token locally, counting refreshes and threads."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__(token=token)  # type: ignore[no-untyped-call]
        self.refreshes: list[int] = []

    def refresh(self, request: Any) -> None:
        self.refreshes.append(threading.get_ident())
        self.token = f"ya29.fresh-{len(self.refreshes)}"
        self.expiry = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(hours=1)


def google_dep(**params: Any) -> Deployment:
    return dep(vertex_access_token=None, **params)


async def authorization(auth: Auth, d: Deployment, tokens: TokenCache | None = None) -> str:
    async with httpx.AsyncClient() as client:
        headers = await auth.headers(
            AuthRequest(d, "POST", "http://x", b"{}", {}, client, tokens or TokenCache())
        )
    return headers["authorization"]


async def test_ready_token_needs_no_google_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google", None)
    prepare(ADAPTER, dep(), req())
    assert await authorization(ADAPTER.auth, dep()) == f"Bearer {TOKEN}"
    with pytest.raises(ConfigurationError) as raised:
        prepare(ADAPTER, google_dep(), req())
    assert "pip install 'rerank-runner[vertex]'" in raised.value.message
    assert "VERTEX_AI_ACCESS_TOKEN" in raised.value.message


async def test_google_credentials_token_is_used_and_loaded_once() -> None:
    sources: list[str | None] = []

    def load(source: str | None) -> Any:
        sources.append(source)
        return GoogleCredentials(token="ya29.from-google-auth")  # type: ignore[no-untyped-call]

    auth, tokens = GoogleAuth(load=load), TokenCache()
    values = await asyncio.gather(*(authorization(auth, google_dep(), tokens) for _ in range(10)))
    assert set(values) == {"Bearer ya29.from-google-auth"}
    assert sources == [None]  # Application Default Credentials, loaded once for every line
    await authorization(auth, google_dep(vertex_credentials=SecretStr("/keys/sa.json")), tokens)
    assert sources == [None, "/keys/sa.json"]


async def test_expired_token_is_refreshed_once_off_the_event_loop() -> None:
    credentials = CountingCredentials()
    auth, tokens = GoogleAuth(load=lambda _source: credentials), TokenCache()
    values = await asyncio.gather(*(authorization(auth, google_dep(), tokens) for _ in range(20)))
    assert set(values) == {"Bearer ya29.fresh-1"}
    assert len(credentials.refreshes) == 1
    assert credentials.refreshes[0] != threading.get_ident()
    assert await authorization(auth, google_dep(), tokens) == "Bearer ya29.fresh-1"  # still valid: cached
    credentials.expiry = datetime.datetime(2000, 1, 1)
    assert await authorization(auth, google_dep(), tokens) == "Bearer ya29.fresh-2"


@pytest.fixture(scope="module")
def service_key() -> tuple[str, str]:
    """A fresh RSA key pair for a test service account: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


@pytest.fixture
def token_server(service_key: tuple[str, str]) -> Iterator[GoogleTokenServer]:
    with GoogleTokenServer(service_key[1], token=TOKEN) as running:
        yield running


@pytest.mark.parametrize("as_file", [False, True])
async def test_service_account_token_through_google_auth(
    token_server: GoogleTokenServer, service_key: tuple[str, str], tmp_path: Path, as_file: bool
) -> None:
    info = json.dumps(token_server.credentials(service_key[0]))
    if as_file:
        (tmp_path / "sa.json").write_text(info)
        info = str(tmp_path / "sa.json")
    auth, tokens = GoogleAuth(), TokenCache()
    values = await asyncio.gather(
        *(authorization(auth, google_dep(vertex_credentials=info), tokens) for _ in range(5))
    )
    assert set(values) == {f"Bearer {TOKEN}"}
    (claims,) = token_server.grants  # one signed JWT grant for every concurrent line
    assert claims["iss"] == "ranker@test-project.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"


async def test_rejected_grant_is_authentication_error(token_server: GoogleTokenServer) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = json.dumps(token_server.credentials(other_key.decode()))
    with pytest.raises(AuthenticationError, match="Invalid JWT Signature"):
        await authorization(GoogleAuth(), google_dep(vertex_credentials=forged))
    assert token_server.grants == []


def test_authorized_user_credentials_load_without_a_request() -> None:
    info = {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}
    loaded = load_credentials(json.dumps(info))
    assert isinstance(loaded, GoogleCredentials)
    assert (loaded.refresh_token, loaded.valid) == ("r", False)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{not json", "Expecting property name"),
        ("/no/such/credentials.json", "No such file"),
        (json.dumps({"type": "external_account", "audience": "x"}), "GOOGLE_APPLICATION_CREDENTIALS"),
        (None, "missing-adc.json"),
    ],
)
async def test_unloadable_credentials_are_configuration_error(
    source: str | None, says: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-adc.json"))
    with pytest.raises(ConfigurationError) as raised:
        await authorization(GoogleAuth(), google_dep(vertex_credentials=source))
    assert "cannot load Google credentials" in raised.value.message
    assert says in raised.value.message


async def test_a_set_up_that_cannot_load_fails_fast_afterwards() -> None:
    attempts: list[str | None] = []

    def load(source: str | None) -> Any:
        attempts.append(source)
        raise ValueError("no credentials here")

    auth, tokens = GoogleAuth(load=load), TokenCache()
    for _ in range(3):
        with pytest.raises(ConfigurationError, match="no credentials here"):
            await authorization(auth, google_dep(), tokens)
    assert attempts == [None]


async def test_google_auth_against_the_local_ranking_api(
    token_server: GoogleTokenServer, service_key: tuple[str, str]
) -> None:
    info = json.dumps(token_server.credentials(service_key[0]))
    with VertexServer(token=TOKEN) as server:
        d = google_dep(base=server.base_url, vertex_credentials=info)
        async with httpx.AsyncClient(trust_env=False) as client:
            transport = Dispatcher(client, RetryPolicy(max_attempts=1))
            response = await transport.rerank(ADAPTER, d, req(documents=["coffee", "solar power", "solar"]))
    assert response.results == [RankedDocument(1, 1.0), RankedDocument(2, 0.5), RankedDocument(0, 0.0)]
    assert [r.status for r in server.requests] == [200]
    assert len(token_server.grants) == 1
