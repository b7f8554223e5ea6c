"""What every registered HTTP provider does alike, in its own wire format (``tests/cases``): where
a request goes and how it authenticates, errors in the provider's envelope (Retry-After, what is
retried and what is not), missing settings, the variables it reads, a round trip through the
``Reranker`` against its local server, and one batch through a real worker."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from jobs.model_list import parse_model_list
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    InvalidRequestError,
    ProviderError,
    QuotaExceededError,
)
from providers.registry import HTTP_ADAPTERS, credentials_from
from providers.reranker import Reranker
from providers.retry import RetryPolicy
from providers.types import Document, RankedDocument, RerankRequest
from tests.adapter_kit import (
    Mock,
    check_error_mapping,
    check_missing_setting,
    e2e_env,
    failure,
    rerank,
    single,
    transport_for,
    wires,
)
from tests.cases import CASES
from tests.cases.case import Line, ProviderCase, config_for
from tests.e2e import run_batch
from tests.ranking_lines import CHUNKED, CHUNKED_SENT, check_records, expected_results, lines_for
from tests.wire_server import rate_limited, unavailable

each_provider = pytest.mark.parametrize("case", CASES, ids=str)
REQUEST = RerankRequest(query="solar power", documents=["solar power plants", "coffee"])
PAIRS = [(1, 0.9), (0, 0.1)]
RANKED = [RankedDocument(1, 0.9), RankedDocument(0, 0.1)]
REFUSALS: list[tuple[int, type[ProviderError]]] = [
    (400, InvalidRequestError),
    (401, AuthenticationError),
    (402, QuotaExceededError),
    (403, AuthenticationError),
    (404, InvalidRequestError),
    (422, InvalidRequestError),
]


def test_every_registered_http_provider_has_a_case() -> None:
    assert sorted(case.provider for case in CASES) == sorted(HTTP_ADAPTERS)


# --- over httpx.MockTransport -----------------------------------------------------------------------


@each_provider
async def test_sends_the_prepared_body_to_its_url_with_its_authorization(case: ProviderCase) -> None:
    mock = Mock(case.answer(PAIRS))
    response, _ = await rerank(case.adapter, case.deployment, REQUEST, mock)
    (sent,) = mock.requests
    assert (sent.method, str(sent.url)) == ("POST", case.url)
    assert re.fullmatch(case.authorization, sent.headers["authorization"]), sent.headers["authorization"]
    assert (sent.headers["content-type"], sent.headers["accept"]) == ("application/json", "application/json")
    assert json.loads(sent.content) == single(case.adapter, case.deployment, REQUEST).body
    assert response.results == RANKED


@pytest.mark.parametrize("case", [c for c in CASES if c.keyless is not None], ids=str)
async def test_without_its_optional_key_no_authorization_is_sent(case: ProviderCase) -> None:
    assert case.keyless is not None
    mock = Mock(case.answer(PAIRS))
    response, _ = await rerank(case.adapter, case.keyless, REQUEST, mock)
    assert "authorization" not in mock.requests[0].headers
    assert response.results == RANKED


@each_provider
async def test_errors_in_its_envelope_are_mapped_and_retried_by_policy(case: ProviderCase) -> None:
    ok = case.answer(PAIRS)
    await check_error_mapping(case.adapter, case.deployment, REQUEST, case.envelope, case.message, ok)


@each_provider
async def test_refusals_in_its_envelope_are_typed_and_never_retried(case: ProviderCase) -> None:
    for status, kind in REFUSALS:
        mock = Mock(httpx.Response(status, json=case.envelope), case.answer(PAIRS))
        error, waits = await failure(case.adapter, case.deployment, REQUEST, mock, max_attempts=3)
        assert type(error) is kind, status
        assert (error.status, error.message, error.retryable) == (status, case.message, False)
        assert (error.provider, error.request_id) == (case.provider, case.error_request_id)
        assert (len(mock.requests), waits) == (1, [])


@each_provider
async def test_a_missing_setting_is_named_and_nothing_is_sent(case: ProviderCase) -> None:
    assert case.missing
    for deployment, names in case.missing:
        await check_missing_setting(case.adapter, deployment, REQUEST, names)


@each_provider
async def test_answers_that_do_not_fit_are_bad_responses_and_not_retried(case: ProviderCase) -> None:
    assert case.malformed
    for answer in case.malformed:
        mock = Mock(httpx.Response(200, json=answer), case.answer(PAIRS))
        error, _ = await failure(case.adapter, case.deployment, REQUEST, mock, max_attempts=3)
        assert isinstance(error, BadResponseError), answer
        assert (error.status, error.retryable, len(mock.requests)) == (200, False, 1)


# --- what is planned before the hooks see it --------------------------------------------------------

LONG = " ".join(f"w{i}" for i in range(10))
OBJECTS: list[Document] = [
    {"id": "a", "title": "Solar panels", "text": "Photovoltaic cells"},
    {"id": "b", "title": "Coffee", "text": "Espresso", "year": 2020},
]
PLANNED: list[tuple[str, str, dict[str, Any], list[Document]]] = [
    # (id, done here unless native, the line's fields, what goes on the wire instead)
    ("objects-rendered-all-fields-but-id", "object_documents", {"documents": OBJECTS},
     ["title: Solar panels\ntext: Photovoltaic cells", "title: Coffee\ntext: Espresso\nyear: 2020"]),
    ("objects-rendered-with-rank_fields-in-order", "object_documents",
     {"documents": OBJECTS, "rank_fields": ["year", "title", "missing"]},
     ["title: Solar panels", "year: 2020\ntitle: Coffee"]),
    ("rank_fields-text-alone-is-bare", "object_documents",
     {"documents": [*OBJECTS, "plain"], "rank_fields": ["text"]},
     ["Photovoltaic cells", "Espresso", "plain"]),
    ("max_tokens_per_doc-truncated-here", "max_tokens_per_doc",
     {"documents": [LONG, {"text": LONG}], "max_tokens_per_doc": 3}, ["w0 w1 w2", "w0 w1 w2"]),
    ("max_chunks_per_doc-chunked-here-top_n-after-pooling", "max_chunks_per_doc",
     {"documents": [LONG, "solar"], "max_chunks_per_doc": 2, "max_tokens_per_doc": 4, "top_n": 1},
     ["w0 w1 w2 w3", "w4 w5 w6 w7", "solar"]),
]  # fmt: skip


@each_provider
def test_its_capabilities_are_as_its_case_says(case: ProviderCase) -> None:
    assert case.adapter.capabilities(case.deployment) == case.capabilities


@pytest.mark.parametrize(
    ("case", "fields", "sent"),
    [
        pytest.param(case, fields, sent, id=f"{case}-{name}")
        for case in CASES
        for name, flag, fields, sent in PLANNED
        if flag not in case.native
    ],
)
def test_what_it_cannot_take_is_planned_here(
    case: ProviderCase, fields: dict[str, Any], sent: list[str]
) -> None:
    """The wire carries the planned documents, as if the line had asked for them (so a chunked
    line's ``top_n`` is applied after pooling, never sent)."""
    body = single(case.adapter, case.deployment, RerankRequest(query="solar power", **fields)).body
    assert case.batch.sent(body) == sent
    assert (
        body == single(case.adapter, case.deployment, RerankRequest(query="solar power", documents=sent)).body
    )


@each_provider
def test_longer_lists_are_split_at_its_limit(case: ProviderCase) -> None:
    """Each part is sent as a line of only its documents would be (``top_n`` included)."""
    limit = case.max_documents or 2500
    documents: list[Document] = [f"doc {i}" for i in range(limit + 1)]
    parts = wires(case.adapter, case.deployment, RerankRequest(query="q", documents=documents, top_n=2))
    sent = [case.batch.sent(wire.body) for wire in parts]
    assert [len(texts) for texts in sent] == ([limit, 1] if case.max_documents else [limit + 1])
    assert [text for texts in sent for text in texts] == documents
    for wire, texts in zip(parts, sent, strict=True):
        alone = RerankRequest(query="q", documents=list(texts), top_n=2)
        assert wire.body == single(case.adapter, case.deployment, alone).body


# --- the variables it reads -------------------------------------------------------------------------


def found(case: ProviderCase, environ: dict[str, str]) -> Credentials:
    return credentials_from(environ)[case.provider]


def key_of(credentials: Credentials) -> str | None:
    return credentials.api_key.get_secret_value() if credentials.api_key is not None else None


def first_set_wins(names: tuple[str, ...], read: Any) -> None:
    """Each variable alone is read; with all set the first wins; an empty one does not count."""
    for name in names:
        assert read({name: f"from-{name}"}) == f"from-{name}", name
    if names:
        everything = {name: f"from-{name}" for name in names}
        assert read(everything) == f"from-{names[0]}"
        second = f"from-{names[1]}" if len(names) > 1 else None
        assert read({**everything, names[0]: ""}) == second


@each_provider
def test_the_key_is_read_from_its_variables_the_first_set_winning(case: ProviderCase) -> None:
    assert case.adapter.key_env == case.key_vars
    first_set_wins(case.key_vars, lambda environ: key_of(found(case, environ)))
    assert key_of(found(case, {})) is None


@each_provider
def test_the_base_is_read_from_its_variables_the_first_set_winning(case: ProviderCase) -> None:
    assert case.adapter.base_env == case.base_vars
    first_set_wins(case.base_vars, lambda environ: found(case, environ).api_base)
    assert found(case, {}).api_base is None


@each_provider
def test_settings_are_read_from_their_variables_secrets_kept_secret(case: ProviderCase) -> None:
    assert {name: env for name, env in case.adapter.param_env.items() if env} == case.setting_vars
    for setting, names in case.setting_vars.items():
        first_set_wins(names, lambda environ, setting=setting: found(case, environ).param(setting))
        value = found(case, {names[0]: "v"}).params[setting]
        assert isinstance(value, SecretStr) == (setting in case.secret_settings), setting


@pytest.mark.parametrize("case", [c for c in CASES if c.ignored_vars], ids=str)
def test_variables_it_must_not_read_are_not_read(case: ProviderCase) -> None:
    assert found(case, dict(case.ignored_vars)) == Credentials()


# --- against its local server -----------------------------------------------------------------------


# --- provider-specific parameters ----------------------------------------------------------------------


def given_params(case: ProviderCase) -> dict[str, Any]:
    return {k: v for forwarded in case.forwarded for k, v in forwarded.given.items()}


def with_params(request: RerankRequest, params: dict[str, Any]) -> RerankRequest:
    return replace(request, provider_params=params)


@each_provider
def test_each_declared_parameter_has_a_row(case: ProviderCase) -> None:
    assert sorted(given_params(case)) == sorted(p.name for p in case.adapter.params)


@each_provider
def test_a_lines_parameters_land_where_declared(case: ProviderCase) -> None:
    plain = single(case.adapter, case.deployment, REQUEST)
    for forwarded in case.forwarded:
        wire = single(case.adapter, case.deployment, with_params(REQUEST, forwarded.given))
        assert wire.body == {**plain.body, **forwarded.body}
        assert forwarded.query in httpx.URL(wire.url).query.decode(), wire.url


@pytest.mark.parametrize("case", [c for c in CASES if c.forwarded], ids=str)
def test_model_list_parameters_land_where_declared(case: ProviderCase) -> None:
    settings = {k: json.dumps(v) for k, v in given_params(case).items()}
    config = config_for(f"{case.provider}/{case.deployment.wire_model}", "http://127.0.0.1:9", **settings)
    (listed,) = parse_model_list(yaml.safe_load(config), {}).deployments["e2e-model"]
    assert listed.provider_params == given_params(case)
    wire = single(case.adapter, replace(case.deployment, provider_params=listed.provider_params), REQUEST)
    for forwarded in case.forwarded:
        assert wire.body.items() >= forwarded.body.items()
        assert forwarded.query in httpx.URL(wire.url).query.decode()


@pytest.mark.parametrize("case", [c for c in CASES if c.schema is not None], ids=str)
def test_its_local_server_takes_what_is_forwarded_and_refuses_what_is_refused_here(
    case: ProviderCase,
) -> None:
    assert case.schema is not None
    body = single(case.adapter, case.deployment, REQUEST).body
    assert case.schema({**body, **{k: v for f in case.forwarded for k, v in f.body.items()}}) is None
    for given in case.refused_params:
        assert case.schema({**body, **given}) is not None, given  # the API would refuse it too


async def refusal(case: ProviderCase, deployment: Deployment, request: RerankRequest) -> ConfigurationError:
    """The ConfigurationError a deployment and request fail with, nothing sent."""
    mock = Mock(case.answer(PAIRS))
    async with transport_for(mock) as (dispatcher, _):
        with pytest.raises(ConfigurationError) as raised:
            await dispatcher.rerank(case.adapter, deployment, request)
    assert mock.requests == []
    return raised.value


@each_provider
async def test_an_undeclared_or_refused_parameter_is_an_error_naming_it_and_nothing_is_sent(
    case: ProviderCase,
) -> None:
    for given in [{"no_such_parameter": 1}, *case.refused_params]:
        exc = await refusal(case, case.deployment, with_params(REQUEST, given))
        assert f"provider_params.{next(iter(given))} " in exc.message, exc.message
    undeclared = replace(case.deployment, provider_params={"no_such_parameter": 1})
    exc = await refusal(case, undeclared, REQUEST)
    assert "provider_params.no_such_parameter is not a parameter" in exc.message


@each_provider
async def test_an_image_document_is_refused_where_its_endpoint_ranks_text_only(case: ProviderCase) -> None:
    """Only NIM's /v1/ranking takes images (tests/providers/adapters/test_nvidia_nim.py); an image
    is never rendered to text."""
    assert not case.adapter.capabilities(case.deployment).image_documents
    request = replace(REQUEST, documents=["solar", {"image": "data:image/png;base64,iVBORw0KGgo="}])
    exc = await refusal(case, case.deployment, request)
    assert "documents[1] is an image" in exc.message


def request_for(line: Line) -> RerankRequest:
    fields = ("query", "documents", "top_n", "rank_fields", "return_documents", "max_tokens_per_doc",
              "max_chunks_per_doc")  # fmt: skip
    return RerankRequest(**{name: line[name] for name in fields if name in line})


def local_reranker(case: ProviderCase, server: Any, tmp_path: Path, client: httpx.AsyncClient) -> Reranker:
    """A Reranker built as a worker builds it: credentials from the variables, the model list
    from the config."""
    env = case.batch.env(server, tmp_path)
    listed = parse_model_list(yaml.safe_load(case.batch.config(server)), env) if case.batch.config else None
    dispatcher = Dispatcher(client, RetryPolicy(max_attempts=1))
    return Reranker(dispatcher, credentials_from(env), listed.deployments if listed else None)


@pytest.mark.parametrize("case", [c for c in CASES if c.forwarded], ids=str)
async def test_its_local_server_takes_every_parameter_it_forwards(
    case: ProviderCase, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    with case.batch.server() as server:
        reranker = local_reranker(case, server, tmp_path, client)
        request = replace(REQUEST, provider_params=given_params(case))
        response = await reranker.rerank(case.model(), request)
    (seen,) = server.requests
    assert seen.status == 200 and len(response.results) == 2
    assert getattr(server, "ignored", []) == []  # vLLM would ignore an unknown field: none was
    for forwarded in case.forwarded:
        assert seen.body.items() >= forwarded.body.items()
        assert forwarded.query in seen.path


@each_provider
async def test_lines_round_trip_through_the_reranker_and_its_local_server(
    case: ProviderCase, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    batch = case.batch
    with batch.server() as server:
        reranker = local_reranker(case, server, tmp_path, client)
        lines = lines_for(case.model(), 3)
        responses = [await reranker.rerank(line["model"], request_for(line)) for line in lines]
    answered = {server.query_of(r.body): r for r in server.requests}
    assert len(answered) == len(server.requests) == 3
    authorization = batch.authorization(server)
    for line, response in zip(lines, responses, strict=True):
        seen = answered[line["query"]]
        assert (seen.method, seen.path, seen.status) == ("POST", batch.path, 200)
        assert seen.body == batch.body(line), line["id"]
        header = seen.headers.get("authorization")
        assert header is None if authorization is None else re.fullmatch(authorization, header or "")
        expected = expected_results(line, batch.texts(line), batch.score)
        assert response.results == [RankedDocument(r["index"], r["relevance_score"]) for r in expected]
        assert response.usage == batch.usage(line)
        assert (response.request_id, response.response_id) == (seen.request_id, batch.response_id(seen))


@pytest.mark.integration
@each_provider
def test_a_batch_runs_through_a_worker_against_its_local_server(
    case: ProviderCase, redis_url: str, tmp_path: Path
) -> None:
    """Every shape of line, a chunked one, the provider's own lines; one line meets a 429 and
    a 503 in the provider's envelope first."""
    batch = case.batch
    with batch.server() as server:
        model, args = case.model(), []
        if batch.config:
            (tmp_path / "config.yaml").write_text(batch.config(server))
            args = ["--config", str(tmp_path / "config.yaml")]
        lines = lines_for(model, 12)
        extra = batch.extra_lines(model)
        server.fail_query(lines[1]["query"], rate_limited("0"), unavailable("0"))
        env = e2e_env(**batch.env(server, tmp_path))
        results, errors = run_batch(
            redis_url, [*lines, {**CHUNKED, "model": model}, *extra], tmp_path, env, extra_args=args
        )

    assert errors == []
    check_records(lines, results[:12], batch.texts, batch.score)
    assert results[12]["results"] == [{"index": 0, "relevance_score": batch.score(1.0)}]
    assert [r["attempts"] for r in results[:12]] == [1, 3] + [1] * 10
    assert {r.status for r in server.requests} == {200, 429, 503}
    authorization = batch.authorization(server)
    for seen in server.requests:
        assert seen.path == batch.path
        header = seen.headers.get("authorization")
        assert header is None if authorization is None else re.fullmatch(authorization, header or "")
    answered = {server.query_of(r.body): r for r in server.requests if r.status == 200}
    for line, record in zip(lines, results, strict=False):
        seen = answered[line["query"]]
        assert seen.body == batch.body(line), line["id"]
        assert record["usage"] == batch.usage(line), line["id"]
        assert (record["request_id"], record["response_id"]) == (seen.request_id, batch.response_id(seen))
    assert batch.sent(answered[CHUNKED["query"]].body) == CHUNKED_SENT
    batch.check(server, extra, results[13:])
