"""Where one model name is served: provider, wire model, base URL, key and settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

__all__ = ["Credentials", "Deployment", "Limits", "split_model_name"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A provider's key, base URL and settings, resolved once at the edge (env or config).

    ``params`` holds provider settings by LiteLLM's ``litellm_params`` names
    (``aws_region_name``, ``vertex_project``, ``project_id`` ...); secret ones are
    ``SecretStr``.
    """

    api_key: SecretStr | None = None
    api_base: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-deployment limits from the model list (enforced by the rate limiter)."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    model: str
    """The name the user wrote: a raw ``provider/model`` or a model list's public name."""
    provider: str
    wire_model: str
    """The model part after the provider prefix, e.g. ``rerank-v3.5``."""
    credentials: Credentials = Credentials()
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers sent (and signed, where the provider signs) with every request."""
    limits: Limits = Limits()
    provider_params: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific parameters from the model list (:mod:`providers.params`); a line's own
    ``provider_params`` win over them."""
    name: str = ""
    """A stable label for this deployment in records and logs (never contains secrets)."""

    @property
    def label(self) -> str:
        return self.name or f"{self.provider}/{self.wire_model}"


def split_model_name(model: str) -> tuple[str, str]:
    """``cohere/rerank-v3.5`` -> (``cohere``, ``rerank-v3.5``); raises ValueError."""
    provider, sep, wire_model = model.partition("/")
    if not sep or not provider or not wire_model:
        raise ValueError(f"model {model!r} is not of the form provider/model")
    return provider, wire_model
