"""bedrock adapter and SigV4 auth: URLs, region, bodies, botocore signing and the credential chain,
parsing; the local Bedrock Agent Runtime verifying signatures.  (What every provider does alike:
test_contract.py.)"""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import botocore.auth
import httpx
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from pydantic import SecretStr

from providers.adapters import bedrock
from providers.adapters.bedrock import ADAPTER
from providers.auth import Auth, AuthRequest
from providers.auth.sigv4 import SigV4Auth
from providers.auth.token_cache import TokenCache
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher, prepare
from providers.errors import AuthenticationError, BadResponseError, ConfigurationError
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument
from tests.adapter_kit import Mock, failure, rerank, serving
from tests.cases.bedrock import ARN, KEY_ID, SECRET, TOKEN, URL, body, dep, json_doc, ok, text
from tests.cases.case import req
from tests.servers.bedrock import BedrockServer

OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar", "body": "photovoltaic power", "year": 2020},
    {"id": "b", "title": "Coffee", "body": "espresso"},
]
FROZEN = datetime.datetime(2026, 1, 2, 3, 4, 5)


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore's chain sees no credentials, files or instance metadata but what a test sets."""
    for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


# --- URL and region -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "model", "params", "url"),
    [
        (None, ARN, {}, "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank"),
        (None, ARN, {"aws_region_name": "eu-central-1"},
         "https://bedrock-agent-runtime.eu-central-1.amazonaws.com/rerank"),
        (None, ARN, {"aws_env_region": "ap-south-1"}, "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank"),
        (None, "cohere.rerank-v3-5:0", {"aws_env_region": "ap-south-1"},
         "https://bedrock-agent-runtime.ap-south-1.amazonaws.com/rerank"),
        (None, "arn:aws-cn:bedrock:cn-north-1::foundation-model/amazon.rerank-v1:0", {},
         "https://bedrock-agent-runtime.cn-north-1.amazonaws.com.cn/rerank"),
        ("https://bedrock-runtime.us-east-1.amazonaws.com", ARN, {},
         "https://bedrock-agent-runtime.us-east-1.amazonaws.com/rerank"),
        ("https://bedrock-agent-runtime.us-east-1.amazonaws.com/", ARN, {},
         "https://bedrock-agent-runtime.us-east-1.amazonaws.com/rerank"),
        ("http://127.0.0.1:8080/rerank", ARN, {}, "http://127.0.0.1:8080/rerank"),
        ("https://gw.example.com/aws", ARN, {}, "https://gw.example.com/aws/rerank"),
        ("https://ignored.example.com", ARN,
         {"aws_bedrock_runtime_endpoint": "https://vpce-1.bedrock-runtime.us-west-2.vpce.amazonaws.com"},
         "https://vpce-1.bedrock-agent-runtime.us-west-2.vpce.amazonaws.com/rerank"),
    ],
)  # fmt: skip
def test_url(base: str | None, model: str, params: dict[str, Any], url: str) -> None:
    [(_, wire)] = prepare(ADAPTER, dep(base, model, **params), req())
    assert (wire.method, wire.url, wire.headers) == ("POST", url, {})


@pytest.mark.parametrize(
    ("model", "params", "region"),
    [
        (ARN, {}, "us-west-2"),
        (ARN, {"aws_region_name": "eu-west-1", "aws_env_region": "ap-south-1"}, "eu-west-1"),
        (ARN, {"aws_env_region": "ap-south-1"}, "us-west-2"),  # the ARN's region beats the environment's
        ("amazon.rerank-v1:0", {"aws_env_region": "ap-south-1"}, "ap-south-1"),
    ],
)
def test_region_precedence(model: str, params: dict[str, Any], region: str) -> None:
    assert bedrock.region(dep(model=model, **params)) == region


# --- bodies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"top_n": 10}, body([text("solar power plants"), text("coffee")], 2), id="top_n-capped"
        ),
        pytest.param(
            {"documents": OBJECTS},
            body([json_doc({"title": "Solar", "body": "photovoltaic power", "year": 2020}),
                  json_doc({"title": "Coffee", "body": "espresso"})], 2),
            id="objects-json-without-id",
        ),
        pytest.param(
            {"documents": [*OBJECTS, "plain"], "rank_fields": ["body", "missing"]},
            body([json_doc({"body": "photovoltaic power"}), json_doc({"body": "espresso"}),
                  text("plain")], 3),
            id="objects-rank_fields-and-strings",
        ),
    ],
)  # fmt: skip
def test_body(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    [(_, wire)] = prepare(ADAPTER, dep(), req(**overrides))
    assert wire.body == expected


def test_json_document_keeps_rank_fields_order() -> None:
    [(_, wire)] = prepare(ADAPTER, dep(), req(documents=OBJECTS, rank_fields=["year", "title"]))
    document = wire.body["sources"][0]["inlineDocumentSource"]["jsonDocument"]
    assert list(document.items()) == [("year", 2020), ("title", "Solar")]


async def test_more_than_1000_documents_are_split_and_merged() -> None:
    documents: list[Document] = [f"doc {i}" for i in range(1003)]
    [(_, first), (_, second)] = prepare(ADAPTER, dep(), req(documents=documents, top_n=5))
    assert [len(w.body["sources"]) for w in (first, second)] == [1000, 3]
    assert [w.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"]
            for w in (first, second)] == [5, 3]  # fmt: skip
    mock = Mock(ok([(7, 0.4), (2, 0.3)]), ok([(1, 0.9), (0, 0.2)]))
    response, _ = await rerank(ADAPTER, dep(), req(documents=documents, top_n=3), mock)
    assert response.results == [RankedDocument(1001, 0.9), RankedDocument(7, 0.4), RankedDocument(2, 0.3)]
    assert (response.requests, response.usage) == (2, None)


# --- SigV4 signing ------------------------------------------------------------------------------------

PAYLOAD = b'{"queries":[]}'
BASE_HEADERS = {"content-type": "application/json", "accept": "application/json"}


def botocore_signs(headers: dict[str, str], token: str | None = None) -> dict[str, str]:
    """What botocore's own signer adds to the same request (at the frozen time)."""
    request = AWSRequest(method="POST", url=URL, data=PAYLOAD, headers=headers)
    botocore.auth.SigV4Auth(ReadOnlyCredentials(KEY_ID, SECRET, token), "bedrock", "us-west-2").add_auth(
        request
    )
    signed = {"authorization": request.headers["Authorization"], "x-amz-date": request.headers["X-Amz-Date"]}
    return signed | ({"x-amz-security-token": token} if token else {})


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signing time (its ``get_current_datetime``), fixed: only botocore is touched."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_a, **_k: FROZEN)


async def sign(
    d: Deployment, headers: dict[str, str], auth: Auth = ADAPTER.auth, tokens: TokenCache | None = None
) -> dict[str, str]:
    async with httpx.AsyncClient() as client:
        return await auth.headers(
            AuthRequest(d, "POST", URL, PAYLOAD, headers, client, tokens or TokenCache())
        )


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("token", [None, TOKEN])
async def test_signature_equals_botocores_for_fixed_credentials_and_time(token: str | None) -> None:
    headers = {**BASE_HEADERS, "x-tenant": "blue"}
    params: dict[str, Any] = {"aws_session_token": SecretStr(token)} if token else {}
    signed = await sign(dep(**params), headers)
    assert signed == botocore_signs(headers, token)
    assert signed["x-amz-date"] == "20260102T030405Z"
    scope = f"Credential={KEY_ID}/20260102/us-west-2/bedrock/aws4_request"
    names = "accept;content-type;host;x-amz-date" + (";x-amz-security-token" if token else "") + ";x-tenant"
    assert re.fullmatch(
        f"AWS4-HMAC-SHA256 {scope}, SignedHeaders={names}, Signature=[0-9a-f]{{64}}", signed["authorization"]
    )


@pytest.mark.usefixtures("frozen_clock")
async def test_extra_headers_and_region_are_signed() -> None:
    blue = await sign(dep(), {**BASE_HEADERS, "x-tenant": "blue"})
    green = await sign(dep(), {**BASE_HEADERS, "x-tenant": "green"})
    elsewhere = await sign(dep(aws_region_name="eu-west-1"), {**BASE_HEADERS, "x-tenant": "blue"})
    assert len({blue["authorization"], green["authorization"], elsewhere["authorization"]}) == 3
    assert "/eu-west-1/bedrock/aws4_request" in elsewhere["authorization"]


@pytest.mark.usefixtures("frozen_clock")
async def test_credentials_from_the_botocore_chain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = SigV4Auth(service="bedrock", region=bedrock.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    chain = Deployment(model=f"bedrock/{ARN}", provider="bedrock", wire_model=ARN)
    tokens = TokenCache()
    first = await sign(chain, BASE_HEADERS, auth, tokens)
    assert "Credential=AKIDFROMENV/" in first["authorization"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCHANGED")
    assert await sign(chain, BASE_HEADERS, auth, tokens) == first  # resolved once, then cached


@pytest.mark.usefixtures("frozen_clock")
async def test_credentials_from_a_named_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[rr-test]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = {SECRET}\n"
        f"aws_session_token = {TOKEN}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    profile = Deployment(
        model=f"bedrock/{ARN}", provider="bedrock", wire_model=ARN,
        credentials=Credentials(params={"aws_profile_name": "rr-test"}),
    )  # fmt: skip
    signed = await sign(profile, BASE_HEADERS, SigV4Auth(service="bedrock", region=bedrock.region))
    assert "Credential=AKIDPROFILE/" in signed["authorization"]
    assert signed["x-amz-security-token"] == TOKEN


def ambient(**params: Any) -> Deployment:
    """Credentials from the environment (as ``credentials_from`` maps them), plus ``params``."""
    env = {
        "aws_env_access_key_id": "AKIDENV",
        "aws_env_secret_access_key": SECRET,
        "aws_env_session_token": "ambient",
    }
    return Deployment(
        model=f"bedrock/{ARN}",
        provider="bedrock",
        wire_model=ARN,
        credentials=Credentials(params=env | params),
    )


@pytest.mark.usefixtures("frozen_clock")
async def test_a_credential_set_comes_whole_from_one_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from_env = await sign(ambient(), BASE_HEADERS)
    assert "Credential=AKIDENV/" in from_env["authorization"]
    assert from_env["x-amz-security-token"] == "ambient"
    listed = await sign(ambient(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET), BASE_HEADERS)
    assert listed == botocore_signs(BASE_HEADERS)  # the model list's pair, without the ambient token
    (tmp_path / "credentials").write_text(
        f"[named]\naws_access_key_id = AKIDNAMED\naws_secret_access_key = {SECRET}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    named = await sign(ambient(aws_profile_name="named"), BASE_HEADERS, SigV4Auth("bedrock", bedrock.region))
    assert "Credential=AKIDNAMED/" in named["authorization"]  # a named profile beats the environment
    assert "x-amz-security-token" not in named


def test_half_a_key_pair_in_the_environment_is_configuration_error() -> None:
    half = Deployment(
        model=f"bedrock/{ARN}", provider="bedrock", wire_model=ARN,
        credentials=Credentials(params={"aws_env_access_key_id": SecretStr(KEY_ID)}),
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY"):
        prepare(ADAPTER, half, req())


async def test_no_credentials_anywhere_is_configuration_error() -> None:
    chain = Deployment(model=f"bedrock/{ARN}", provider="bedrock", wire_model=ARN)
    with pytest.raises(ConfigurationError) as raised:
        await sign(chain, BASE_HEADERS, SigV4Auth(service="bedrock", region=bedrock.region))
    assert "AWS_ACCESS_KEY_ID" in raised.value.message
    assert ARN in raised.value.message


def test_half_given_keys_are_configuration_error() -> None:
    half = Deployment(
        model=f"bedrock/{ARN}", provider="bedrock", wire_model=ARN,
        credentials=Credentials(params={"aws_access_key_id": SecretStr(KEY_ID)}),
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="aws_access_key_id is set without aws_secret_access_key"):
        prepare(ADAPTER, half, req())


def test_role_assumption_params_are_refused_not_ignored() -> None:
    with pytest.raises(
        ConfigurationError, match=r"aws_role_name .* is not supported: put the role in an AWS profile"
    ):
        prepare(ADAPTER, dep(aws_role_name="arn:aws:iam::123456789012:role/ranker"), req())


def test_without_botocore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)
    with pytest.raises(ConfigurationError) as raised:
        prepare(ADAPTER, dep(), req())
    assert "pip install 'rerank-runner[bedrock]'" in raised.value.message


# --- the shared HTTP path over MockTransport -----------------------------------------------------------


async def test_sends_signed_request_and_parses_results() -> None:
    mock = Mock(ok([(1, 0.2), (2, 0.95), (0, 0.6)]))
    d = dep(headers={"X-Tenant": "blue"}, aws_session_token=SecretStr(TOKEN))
    response, _ = await rerank(ADAPTER, d, req(documents=["a", "b", "c"], top_n=2), mock)
    assert response.results == [RankedDocument(2, 0.95), RankedDocument(0, 0.6)]
    assert (response.usage, response.response_id, response.request_id) == (None, None, "aws-req-1")
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == (
        "POST",
        "https://bedrock-agent-runtime.us-west-2.amazonaws.com/rerank",
    )
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "x-tenant" in sent.headers["authorization"].split("SignedHeaders=")[1]
    assert re.fullmatch(r"\d{8}T\d{6}Z", sent.headers["x-amz-date"])
    assert sent.headers["x-amz-security-token"] == TOKEN
    assert json.loads(sent.content)["rerankingConfiguration"]["bedrockRerankingConfiguration"] == {
        "modelConfiguration": {"modelArn": ARN},
        "numberOfResults": 2,
    }


async def test_more_results_than_top_n_are_cut_client_side() -> None:
    response, _ = await rerank(
        ADAPTER, dep(), req(documents=["a", "b", "c"], top_n=1), Mock(ok([(1, 0.3), (2, 0.7)]))
    )
    assert response.results == [RankedDocument(2, 0.7)]


async def test_a_page_short_of_the_wanted_results_is_followed_with_its_token() -> None:
    mock = Mock(ok([(0, 0.9)], nextToken="page-2"), ok([(1, 0.2)]))
    response, _ = await rerank(ADAPTER, dep(), req(), mock)
    assert response.results == [RankedDocument(0, 0.9), RankedDocument(1, 0.2)]
    first, second = mock.bodies()
    assert ("nextToken" in first, second) == (False, {**first, "nextToken": "page-2"})
    complete, _ = await rerank(ADAPTER, dep(), req(top_n=1), Mock(ok([(0, 0.9)], nextToken="page-2")))
    assert complete.results == [RankedDocument(0, 0.9)]  # all that was wanted: not followed


@pytest.mark.parametrize(
    "pages",
    [
        [ok([(0, 0.9)], nextToken="again"), ok([], nextToken="again")],  # a token that repeats
        [ok([(0, 0.9)], nextToken="p2"), ok([(0, 0.8)])],  # a result given twice
        [ok([(0, 0.9)], nextToken=7)],  # not a token
    ],
)
async def test_pages_that_do_not_add_up_are_a_bad_response(pages: list[httpx.Response]) -> None:
    error, _ = await failure(ADAPTER, dep(), req(), Mock(*pages))
    assert isinstance(error, BadResponseError)


# --- against the local Bedrock Agent Runtime -----------------------------------------------------------


server = serving(lambda: BedrockServer(session_token=TOKEN))


@pytest.fixture
async def transport() -> AsyncIterator[Dispatcher]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield Dispatcher(client, RetryPolicy(max_attempts=1))


async def test_paged_answers_of_the_local_server_are_followed(transport: Dispatcher) -> None:
    with BedrockServer(session_token=TOKEN, page_size=2) as paging:
        d = dep(paging.base_url, aws_session_token=SecretStr(TOKEN))
        docs: list[Document] = ["solar", "coffee", "solar power", "tea", "power"]
        response = await transport.rerank(ADAPTER, d, req(documents=docs, top_n=4))
    assert [r.status for r in paging.requests] == [200, 200]  # each page signed and accepted
    assert [r.body.get("nextToken") for r in paging.requests] == [None, "page-after-2"]
    assert [r.index for r in response.results] == [2, 0, 4, 1]


async def test_local_server_verifies_the_signature(server: BedrockServer, transport: Dispatcher) -> None:
    d = dep(server.base_url, headers={"x-tenant": "blue"}, aws_session_token=SecretStr(TOKEN))
    response = await transport.rerank(ADAPTER, d, req(documents=[*OBJECTS, "solar"], top_n=2))
    assert response.results == [RankedDocument(0, 1.0), RankedDocument(2, 0.5)]
    (seen,) = server.requests
    assert seen.status == 200
    assert response.request_id == seen.request_id
    wrong = dep(
        server.base_url, aws_secret_access_key=SecretStr("not-the-secret"), aws_session_token=SecretStr(TOKEN)
    )
    with pytest.raises(AuthenticationError, match="signature we calculated does not match"):
        await transport.rerank(ADAPTER, wrong, req())
