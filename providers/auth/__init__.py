"""How a request proves who it is from: one small class per scheme.

An :class:`Auth` turns an :class:`AuthRequest` (the final method, URL, body and headers) into
headers.  Schemes are stateless data: those that need I/O (token exchange, credential refresh)
do it here, in the shared path, never in an adapter's hooks, and keep what they load in the
request's :class:`~providers.auth.token_cache.TokenCache`, which the dispatcher owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from providers.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

    from providers.auth.token_cache import TokenCache
    from providers.deployment import Deployment

__all__ = ["BEARER", "Auth", "AuthRequest", "Bearer", "missing_key"]


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """A request that is final but for its auth headers, and what a scheme may use to sign it."""

    deployment: Deployment
    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    """Every header already set (schemes that sign, sign these)."""
    client: httpx.AsyncClient
    """The shared client, for token exchanges."""
    tokens: TokenCache
    """The dispatcher's credentials and tokens."""


class Auth(Protocol):
    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        """Raise ConfigurationError (naming what to set) when the deployment cannot authenticate."""

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        """Headers to add to ``request``."""
        ...


def missing_key(deployment: Deployment, key_env: tuple[str, ...]) -> ConfigurationError:
    names = " or ".join(key_env) if key_env else "api_key in the model list"
    return ConfigurationError(
        f"no API key for {deployment.model!r}: set {names}", provider=deployment.provider
    )


@dataclass(frozen=True)
class Bearer:
    """``Authorization: Bearer <key>``.  ``required``: whether a deployment must have a key (a
    predicate when that depends on the deployment); without one no header is sent, or
    ``fallback`` (vLLM's servers accept any)."""

    required: bool | Callable[[Deployment], bool] = True
    fallback: str | None = None
    header: str = "authorization"
    scheme: str = "Bearer"

    def _key(self, deployment: Deployment) -> str | None:
        key = deployment.credentials.api_key
        value = key.get_secret_value() if key is not None else ""
        return value or self.fallback

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        required = self.required(deployment) if callable(self.required) else self.required
        if required and not self._key(deployment):
            raise missing_key(deployment, key_env)

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        key = self._key(request.deployment)
        return {self.header: f"{self.scheme} {key}"} if key else {}


BEARER = Bearer()
