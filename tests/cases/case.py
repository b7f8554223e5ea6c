"""What the contract suite (``tests/providers/adapters/test_contract.py``) needs to know about one
HTTP provider: a working deployment and request, an answer in the provider's wire format, its
error envelope, the headers it authenticates with, the variables it reads, and how a batch runs
against its local server.  Everything else about a provider is tested in its own file."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from providers.adapter import Capabilities, HttpAdapter
from providers.deployment import Deployment
from providers.registry import HTTP_ADAPTERS
from providers.types import RerankRequest
from tests.adapter_kit import deployment
from tests.ranking_lines import rendered, unchanged
from tests.wire_server import Recorded, words

Line = dict[str, Any]
QUERY = "solar power"
TEXTS = ["solar power plants", "coffee"]
req = partial(RerankRequest, query=QUERY, documents=TEXTS)
"""The request every provider's tests start from (``req(top_n=1)``, ``req(documents=...)``)."""
Record = dict[str, Any]


def no_more_lines(model: str) -> list[Line]:
    return []


def nothing_more(server: Any, lines: list[Line], results: list[Record]) -> None:
    """No provider-specific assertion beyond the contract's."""


def documents_of(body: Any) -> list[str]:
    return list(body["documents"])


def its_response_id(seen: Recorded) -> str | None:
    return seen.response_id


@dataclass(frozen=True)
class Batch:
    """One batch through ``enqueue.py`` and a real ``worker.py`` against the local server."""

    server: Callable[[], AbstractContextManager[Any]]
    """Starts the provider's local server (a :class:`WireServer`)."""
    env: Callable[[Any, Path], dict[str, str]]
    """The worker's variables for that server (the key and base, as a user would set them)."""
    path: str
    """The route every request must take."""
    authorization: Callable[[Any], str | None]
    """A regular expression the ``Authorization`` header of every request must match in full
    (None: no header), given the server (after the requests)."""
    body: Callable[[Line], Any]
    """What the server must receive for a line (one request)."""
    usage: Callable[[Line], Any]
    """What the line's record reports as usage."""
    sent: Callable[[Any], list[str]] = documents_of
    """The texts a request body carries (to check the chunked line)."""
    texts: Callable[[Line], list[str]] = rendered
    """What the server ranks for a line's documents."""
    score: Callable[[float], float] = unchanged
    """The server's score for a word-overlap fraction (logits, for some)."""
    response_id: Callable[[Recorded], str | None] = its_response_id
    """The response id a record carries, from the request that answered it."""
    config: Callable[[Any], str] | None = None
    """A model list (config.yaml) whose model ``e2e-model`` is served by the server; None: the
    lines name ``provider/<wire model>`` and the worker finds it through ``env``."""
    wire_model: str | None = None
    """The wire model the batch asks for, when not the case's."""
    extra_lines: Callable[[str], list[Line]] = no_more_lines
    """Lines of the provider's own (given the model name), run after the contract's."""
    check: Callable[[Any, list[Line], list[Record]], None] = nothing_more
    """The provider's own assertions on the server and the extra lines' records."""


@dataclass(frozen=True)
class Forwarded:
    """A provider-specific parameter as a line gives it and where it must land on the wire."""

    given: dict[str, Any]
    """The ``provider_params`` (or ``litellm_params``) given."""
    body: dict[str, Any] = field(default_factory=dict)
    """Fields the body must then hold."""
    query: str = ""
    """What the URL's query string must then hold."""


Pairs = list[tuple[int, float]]
NATIVE_FLAGS = ("object_documents", "top_n", "max_tokens_per_doc", "max_chunks_per_doc")


@dataclass(frozen=True)
class ProviderCase:
    deployment: Deployment
    """A deployment that can send (key, base and settings set)."""
    answer: Callable[[Pairs], httpx.Response]
    """The provider's answer ranking (index, score) pairs, in its wire format."""
    url: str
    """Where a request goes for ``deployment``."""
    authorization: str
    """A regular expression the ``Authorization`` header of ``deployment`` must match in full."""
    envelope: Any
    """The provider's error body."""
    message: str
    """The message to carry from ``envelope``."""
    missing: tuple[tuple[Deployment, tuple[str, ...]], ...]
    """Deployments lacking a setting, and the variables the error must name."""
    native: frozenset[str]
    """What ``deployment``'s endpoint does itself (of :data:`NATIVE_FLAGS`); the rest is planned."""
    max_documents: int | None
    """Documents per request; longer lists are split."""
    malformed: tuple[Any, ...]
    """Answers (HTTP 200) that do not fit its format, or not the request."""
    batch: Batch
    error_request_id: str | None = None
    """The request id an error takes from ``envelope`` (when no header carries one)."""
    keyless: Deployment | None = None
    """For providers whose key is optional: a deployment without one (sends no header)."""
    key_vars: tuple[str, ...] = ()
    """The variables a key is read from, the first set winning (LiteLLM's names)."""
    base_vars: tuple[str, ...] = ()
    setting_vars: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Provider settings read from variables, by setting name."""
    secret_settings: frozenset[str] = frozenset()
    ignored_vars: Mapping[str, str] = field(default_factory=dict)
    """Variables of neighbouring tools this provider must not read."""
    forwarded: tuple[Forwarded, ...] = ()
    """Each provider-specific parameter it declares, given and as sent (its local server takes
    them all at once)."""
    refused_params: tuple[dict[str, Any], ...] = ()
    """Values of its parameters the API refuses (refused here, before anything is sent)."""
    schema: Callable[[Any], Any] | None = None
    """Its local server's body check (what the API's schema says of a body; None: fine)."""

    @property
    def provider(self) -> str:
        return self.deployment.provider

    @property
    def adapter(self) -> HttpAdapter:
        return HTTP_ADAPTERS[self.provider]

    @property
    def capabilities(self) -> Capabilities:
        """What ``native`` and ``max_documents`` say the adapter declares."""
        flags = {flag: flag in self.native for flag in NATIVE_FLAGS}
        return Capabilities(**flags, max_documents=self.max_documents)

    def model(self) -> str:
        """The model name a batch's lines ask for."""
        if self.batch.config is not None:
            return "e2e-model"
        return f"{self.provider}/{self.batch.wire_model or self.deployment.wire_model}"

    def __str__(self) -> str:
        return self.provider


class Default(Enum):
    """The deployment's own value (a base or key argument left out)."""

    VALUE = 0


@dataclass(frozen=True)
class Deployer:
    """``dep(base, key, model)``: a deployment of ``provider`` with ``key`` and ``base`` unless
    given (``None`` included: a deployment without it)."""

    provider: str
    wire_model: str
    key: str | None = None
    base: str | None = None

    def __call__(
        self,
        base: str | Default | None = Default.VALUE,
        key: str | Default | None = Default.VALUE,
        model: str | None = None,
    ) -> Deployment:
        return deployment(
            self.provider,
            model or self.wire_model,
            self.key if key is Default.VALUE else key,
            self.base if base is Default.VALUE else base,
        )


def bearer(key: str) -> str:
    """The pattern of ``Authorization: Bearer <key>``."""
    return "Bearer " + re.escape(key)


def config_for(model: str, base: str, **params: str) -> str:
    """A model list serving ``e2e-model`` with ``model`` at ``base``."""
    settings = "".join(f"      {name}: {value}\n" for name, value in params.items())
    return (
        "model_list:\n  - model_name: e2e-model\n    litellm_params:\n"
        f"      model: {model}\n      api_base: {base}\n{settings}"
    )


def strings_body(model: str, line: Line, top_n: str = "top_n", **fields: Any) -> dict[str, Any]:
    """``{model, query, documents: [text], <top_n>?}`` and ``fields``: the body of most
    string-only endpoints for a line (its documents rendered)."""
    body = {"model": model, "query": line["query"], "documents": rendered(line), **fields}
    return body | ({top_n: line["top_n"]} if "top_n" in line else {})


def word_count(line: Line) -> int:
    """Tokens as the servers counting words count them: the query's and each document's."""
    return sum(len(words(line["query"])) + len(words(text)) for text in rendered(line))


def split_count(line: Line) -> int:
    """Tokens as the servers splitting on white space count them."""
    return sum(len(line["query"].split()) + len(text.split()) for text in rendered(line))
