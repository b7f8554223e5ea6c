"""Where one model name is served: provider, wire model, base URL and key."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class Credentials:
    """A provider's key and base URL, resolved once at the edge from env or config."""

    api_key: SecretStr | None = None
    api_base: str | None = None


@dataclass(frozen=True, slots=True)
class Deployment:
    model: str
    """The name the user wrote, e.g. ``cohere/rerank-v3.5``."""
    provider: str
    wire_model: str
    """What goes on the wire, e.g. ``rerank-v3.5``."""
    credentials: Credentials = Credentials()


def split_model_name(model: str) -> tuple[str, str]:
    """``cohere/rerank-v3.5`` -> (``cohere``, ``rerank-v3.5``); raises ValueError."""
    provider, sep, wire_model = model.partition("/")
    if not sep or not provider or not wire_model:
        raise ValueError(f"model {model!r} is not of the form provider/model")
    return provider, wire_model
