"""Secrets a provider echoes back never survive into an error, a record or a log line."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from providers.adapters import bedrock, cohere
from providers.deployment import Credentials, Deployment
from providers.dispatcher import Dispatcher
from providers.errors import AuthenticationError, BadResponseError, ProviderError, ServerError
from providers.redaction import OWN_LOGGERS, REDACTED, RedactingFilter, Redactor, redact_logs, secret_values
from providers.retry import RetryPolicy
from providers.types import RerankRequest
from tests.adapter_kit import deployment

KEY = "sk-live-Zq8/x+Y=3kTr"  # "/", "+" and "=" come back JSON- or percent-encoded too
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REQUEST = RerankRequest(query="q", documents=["a", "b"])


def test_configured_values_are_scrubbed_in_every_encoding() -> None:
    redact = Redactor([KEY])
    for form in (KEY, json.dumps(KEY)[1:-1], "sk-live-Zq8%2Fx%2BY%3D3kTr"):
        assert redact(f"key {form} is invalid") == f"key {REDACTED} is invalid"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer abc123def456", "Authorization: "),
        ('{"headers": {"authorization": "Bearer abc123def456"}}', '{"headers": {"authorization": "'),
        ('{"x-api-key": "k-123456789"}', '{"x-api-key": "'),
        ("api-key=abcdef123456&x=1", "api-key="),
        ("token was bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "token was bearer "),
        ("ZenApiKey dXNlcjprZXk=", "ZenApiKey "),
        ("GET /v1?key=AIzaSyA-123456&alt=json", "GET /v1?key="),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-west-2/bedrock/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400",
            "AWS4-HMAC-SHA256 Credential=",
        ),
    ],
)
def test_credential_shaped_text_is_scrubbed_without_knowing_the_value(text: str, kept: str) -> None:
    redacted = Redactor()(text)
    assert redacted.startswith(kept) and REDACTED in redacted
    for secret in (
        "abc123def456",
        "k-123456789",
        "abcdef123456",
        "eyJhbG",
        "dXNlcjprZXk",
        "AIzaSyA",
        "AKIDEXAMPLE",
    ):
        assert secret not in redacted
    assert "5d672d79" not in redacted


@pytest.mark.parametrize(
    "prose",
    [
        "Basic authentication failed",
        "invalid api_key provided",
        "Bearer token expired",
        "top_n must be positive",
    ],
)
def test_ordinary_messages_are_left_alone(prose: str) -> None:
    assert Redactor(["short"])(prose) == prose


def test_secret_values_come_from_every_provider_and_model_list_entry() -> None:
    env = {
        "cohere": Credentials(api_key=SecretStr(KEY)),
        "bedrock": Credentials(
            params={"aws_secret_access_key": SecretStr(AWS_SECRET), "aws_region_name": "us-west-2"}
        ),
    }
    entry = Deployment(
        "m",
        "jina_ai",
        "x",
        credentials=Credentials(api_key=SecretStr("jina-entry-key")),
        headers={"X-Api-Key": "hdr-secret-1", "X-Trace": "t"},
    )
    assert sorted(secret_values(env.values(), [entry])) == sorted(
        [KEY, AWS_SECRET, "jina-entry-key", "hdr-secret-1"]
    )


class Echo:
    """A provider that repeats what it was sent: the Authorization header and the key."""

    def __init__(self, status: int, shape: str = "json") -> None:
        self.status, self.shape = status, shape

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        said = f"invalid key {KEY}; you sent Authorization: {auth}"
        if self.shape == "json":
            body = orjson.dumps({"message": said, "echo": {"authorization": auth, "key": KEY}})
        else:
            body = said.encode()
        return httpx.Response(self.status, content=body, headers={"x-request-id": "r-1"})


async def failing(handler: Echo, adapter: Any, d: Deployment, redactor: Redactor) -> ProviderError:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        dispatcher = Dispatcher(client, RetryPolicy(max_attempts=1), redactor=redactor)
        with pytest.raises(ProviderError) as raised:
            await dispatcher.rerank(adapter, d, REQUEST)
    return raised.value


def no_secret_in(error: ProviderError, *secrets: str) -> None:
    shown = " ".join([str(error), repr(error.args), json.dumps(error.to_record())])
    for secret in secrets:
        assert secret not in shown
    assert REDACTED in shown


@pytest.mark.parametrize(
    ("status", "shape", "kind"),
    [(401, "json", AuthenticationError), (500, "text", ServerError), (200, "json", BadResponseError)],
)
async def test_a_provider_echoing_the_key_leaves_no_key_in_the_error(
    status: int, shape: str, kind: type
) -> None:
    d = deployment("cohere", "rerank-v3.5", key=KEY)
    error = await failing(Echo(status, shape), cohere.ADAPTER, d, Redactor([KEY]))
    assert isinstance(error, kind) and (error.status, error.request_id) == (status, "r-1")
    no_secret_in(error, KEY, "sk-live")


async def test_patterns_alone_catch_an_echoed_bearer_token_of_a_key_not_configured() -> None:
    d = deployment("cohere", "rerank-v3.5", key="unlisted-key-123")
    error = await failing(Echo(401), cohere.ADAPTER, d, Redactor())
    assert "Bearer unlisted-key-123" not in json.dumps(error.to_record())


async def test_an_echoed_sigv4_signature_and_secret_key_are_scrubbed() -> None:
    creds = Credentials(
        params={
            "aws_access_key_id": SecretStr("AKIDEXAMPLE123"),
            "aws_secret_access_key": SecretStr(AWS_SECRET),
            "aws_region_name": "us-west-2",
        }
    )
    d = Deployment(
        "bedrock/m",
        "bedrock",
        "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0",
        credentials=creds,
    )
    error = await failing(Echo(403), bedrock.ADAPTER, d, Redactor(secret_values([creds])))
    no_secret_in(error, "AKIDEXAMPLE123", AWS_SECRET)
    assert "Signature=" in (error.body_excerpt or "") and "Signature=[REDACTED]" in (error.body_excerpt or "")


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    handler.addFilter(RedactingFilter(Redactor([KEY])))
    try:
        logger.warning("failed: %s", f"Authorization: Bearer {KEY}")
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            logger.exception("crashed with %r", KEY)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert KEY not in text and "boom [REDACTED]" in text and "failed: Authorization: [REDACTED]" in text


def test_redact_logs_covers_the_runners_own_loggers_without_handlers() -> None:
    own = logging.getLogger("rerank_runner.worker")
    try:
        redact_logs(Redactor([KEY]))
        redact_logs(Redactor([KEY]))  # idempotent: one filter each
        assert sum(isinstance(f, RedactingFilter) for f in own.filters) == 1
        record = own.makeRecord(own.name, logging.WARNING, __file__, 1, "key %s", (KEY,), None)
        assert own.filter(record) and record.getMessage() == f"key {REDACTED}"
    finally:
        for target in [*logging.getLogger().handlers, *(logging.getLogger(n) for n in OWN_LOGGERS)]:
            for f in [f for f in target.filters if isinstance(f, RedactingFilter)]:
                target.removeFilter(f)
