"""The provider table: model prefix -> adapter.  Adding a provider is one row here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from providers.adapter import HttpAdapter
from providers.adapters import (
    azure_ai,
    bedrock,
    cohere,
    dashscope,
    deepinfra,
    fireworks_ai,
    hosted_vllm,
    huggingface,
    infinity,
    jina_ai,
    litellm_proxy,
    local,
    nvidia_nim,
    together_ai,
    vertex_ai,
    voyage,
    watsonx,
)
from providers.deployment import Credentials, Deployment, split_model_name
from providers.errors import ConfigurationError
from providers.params import Param

__all__ = [
    "ADAPTERS",
    "HTTP_ADAPTERS",
    "KNOWN_PROVIDERS",
    "LOCAL_PROVIDER",
    "PROVIDER_PARAMS",
    "credentials_from",
    "declared_params",
    "deployment_for",
]

LOCAL_PROVIDER = "local"
ADAPTERS = (
    cohere.ADAPTER,
    litellm_proxy.ADAPTER,
    together_ai.ADAPTER,
    azure_ai.ADAPTER,
    infinity.ADAPTER,
    jina_ai.ADAPTER,
    nvidia_nim.ADAPTER,
    bedrock.ADAPTER,
    huggingface.ADAPTER,
    hosted_vllm.ADAPTER,
    deepinfra.ADAPTER,
    fireworks_ai.ADAPTER,
    voyage.ADAPTER,
    vertex_ai.ADAPTER,
    watsonx.ADAPTER,
    dashscope.ADAPTER,
    dashscope.QWENCLOUD,
    dashscope.QWEN_AI_PLATFORM,
)
HTTP_ADAPTERS: dict[str, HttpAdapter] = {adapter.provider: adapter for adapter in ADAPTERS}
KNOWN_PROVIDERS = (LOCAL_PROVIDER, *sorted(HTTP_ADAPTERS))
PROVIDER_PARAMS = frozenset(p.name for adapter in ADAPTERS for p in adapter.params)
"""Every provider-specific parameter some adapter forwards."""


def declared_params(provider: str) -> tuple[Param, ...]:
    """The provider-specific parameters a provider forwards (``local/`` takes none)."""
    adapter = HTTP_ADAPTERS.get(provider)
    return adapter.params if adapter is not None else ()


def deployment_for(model: str, credentials: Mapping[str, Credentials]) -> Deployment:
    """Resolve a ``provider/model`` name; raises ConfigurationError naming what is wrong."""
    try:
        provider, wire_model = split_model_name(model)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if provider == LOCAL_PROVIDER:
        local.check_model(wire_model)
    elif provider not in HTTP_ADAPTERS:
        raise ConfigurationError(
            f"unknown provider {provider!r} in model {model!r}; known: {', '.join(KNOWN_PROVIDERS)}"
        )
    return Deployment(
        model=model,
        provider=provider,
        wire_model=wire_model,
        credentials=credentials.get(provider, Credentials()),
    )


def _secret_param(name: str) -> bool:
    return any(word in name for word in ("key", "secret", "token", "password", "credentials"))


def credentials_from(environ: Mapping[str, str]) -> dict[str, Credentials]:
    """Each HTTP provider's key, base and settings from a mapping of variables
    (for each, the first name that is set wins).

    The caller passes the mapping; this module never reads the process environment.
    """

    def first(names: tuple[str, ...]) -> str | None:
        return next((environ[n] for n in names if environ.get(n)), None)

    found: dict[str, Credentials] = {}
    for name, adapter in HTTP_ADAPTERS.items():
        key = first(adapter.key_env)
        params: dict[str, Any] = {}
        for param, names in adapter.param_env.items():
            if (value := first(names)) is not None:
                params[param] = SecretStr(value) if _secret_param(param) else value
        found[name] = Credentials(
            api_key=SecretStr(key) if key else None,
            api_base=first(adapter.base_env),
            params=params,
        )
    return found
