"""IBM watsonx.ai rerank (``watsonx/<model_id>``, e.g. ``cross-encoder/ms-marco-minilm-l-12-v2``).

``POST {base}/ml/v1/text/rerank?version=2024-05-31`` (``api_version`` param overrides the
version); the base (e.g. ``https://us-south.ml.cloud.ibm.com``) comes from ``api_base`` /
``WATSONX_API_BASE`` / ``WATSONX_URL`` / ``WX_URL`` / ``WML_URL`` and is required.  Auth:
:class:`providers.auth.watsonx_iam.WatsonxAuth` (token, Zen API key, or IAM-exchanged API key).

Body ``{model_id, query, inputs: [{text}], parameters: {return_options: {top_n},
truncate_input_tokens}, project_id | space_id}``; the project (``WATSONX_PROJECT_ID`` /
``WX_PROJECT_ID`` / ``PROJECT_ID``) wins over the space (``WATSONX_DEPLOYMENT_SPACE_ID`` /
``WATSONX_SPACE_ID``) and one of them is required.

``watsonx/deployment/<id>``: a deployed model, ``POST {base}/ml/v1/deployments/<id>/text/rerank``
(the route pattern of watsonx.ai's other deployment endpoints: generation, chat, forecast) with
the same body minus ``model_id`` and the project or space, which the deployment already has.

Inputs are strings, so object documents
are rendered to text (``rank_fields``).  ``max_tokens_per_doc`` becomes ``truncate_input_tokens``
(watsonx counts it per query + input pair, truncating the input's end).  Scores are raw
cross-encoder scores (logits, can be negative).  Usage: ``{"tokens": {"input_tokens": N}}`` from
``input_token_count``.  Errors come as ``{errors: [{code, message}], trace, status_code}``.
"""

from __future__ import annotations

from typing import Any

from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, static
from providers.adapters.shapes import parse_results
from providers.auth.watsonx_iam import IAM_URL, TOKEN, ZEN_API_KEY, WatsonxAuth
from providers.deployment import Deployment
from providers.errors import ConfigurationError
from providers.types import RerankRequest

__all__ = [
    "ADAPTER",
    "DEFAULT_VERSION",
    "DEPLOYMENT_PREFIX",
    "PATH",
    "PROJECT_ENV",
    "SPACE_ENV",
    "build_request",
    "parse_response",
    "rerank_url",
    "scope",
]

DEFAULT_VERSION = "2024-05-31"
PATH = "/ml/v1/text/rerank"
PROJECT_ENV = ("WATSONX_PROJECT_ID", "WX_PROJECT_ID", "PROJECT_ID")
SPACE_ENV = ("WATSONX_DEPLOYMENT_SPACE_ID", "WATSONX_SPACE_ID")
DEPLOYMENT_PREFIX = "deployment/"


def _deployed(deployment: Deployment) -> str | None:
    """The deployment id of a ``watsonx/deployment/<id>`` model, else None."""
    wire_model = deployment.wire_model
    return wire_model.removeprefix(DEPLOYMENT_PREFIX) if wire_model.startswith(DEPLOYMENT_PREFIX) else None


def rerank_url(base: str, version: str | None, deployed: str | None = None) -> str:
    if deployed is not None:
        url = f"{base.removesuffix(PATH)}/ml/v1/deployments/{deployed}/text/rerank"
    else:
        url = base if base.endswith(PATH) else f"{base}{PATH}"
    return f"{url}?version={version or DEFAULT_VERSION}"


def scope(deployment: Deployment) -> dict[str, str]:
    """The model and the project or space the body names (none for a deployed model)."""
    if _deployed(deployment) is not None:
        return {}
    param = deployment.credentials.param
    if project_id := param("project_id"):
        return {"model_id": deployment.wire_model, "project_id": project_id}
    if space_id := param("space_id"):
        return {"model_id": deployment.wire_model, "space_id": space_id}
    raise ConfigurationError(
        f"no watsonx.ai project or space for {deployment.model!r}: set {' or '.join(PROJECT_ENV)}, "
        f"or {' or '.join(SPACE_ENV)} (or project_id / space_id in the model list)",
        provider=deployment.provider,
    )


def build_request(base: str, deployment: Deployment, request: RerankRequest) -> WireRequest:
    body: dict[str, Any] = {
        **scope(deployment),
        "query": request.query,
        "inputs": [{"text": document} for document in request.documents],
    }
    parameters: dict[str, Any] = {}
    if request.top_n is not None:
        parameters["return_options"] = {"top_n": request.top_n}
    if request.max_tokens_per_doc is not None:
        parameters["truncate_input_tokens"] = request.max_tokens_per_doc
    if parameters:
        body["parameters"] = parameters
    url = rerank_url(base, deployment.credentials.param("api_version"), _deployed(deployment))
    return WireRequest(url=url, body=body)


def parse_response(body: Any, request: RerankRequest) -> ParsedResponse:
    count = body.get("input_token_count")
    usage = {"tokens": {"input_tokens": int(count)}} if count is not None else None
    return ParsedResponse(results=parse_results(body, score="score"), usage=usage)


ADAPTER = HttpAdapter(
    provider="watsonx",
    independent_scores=True,  # a cross-encoder: each document scored on its own
    build_request=build_request,
    parse_response=parse_response,
    # no documented per-request input limit: candidate lists are sent whole
    capabilities=static(Capabilities(object_documents=False, max_tokens_per_doc=True)),
    auth=WatsonxAuth(),
    auth_kind="a token (Bearer), else a Zen API key (ZenApiKey), else the API key exchanged at IBM IAM",
    key_env=("WATSONX_APIKEY", "WATSONX_API_KEY", "WX_API_KEY"),
    base_env=("WATSONX_API_BASE", "WATSONX_URL", "WX_URL", "WML_URL"),
    param_env={
        TOKEN: ("WATSONX_TOKEN",),
        ZEN_API_KEY: ("WATSONX_ZENAPIKEY",),
        IAM_URL: ("WATSONX_IAM_URL",),
        "project_id": PROJECT_ENV,
        "space_id": SPACE_ENV,
        "api_version": (),
    },
    default_base=None,
    score_kind="raw cross-encoder score (logit, unbounded, can be negative)",
    usage_kind="`tokens.input_tokens`",
)
