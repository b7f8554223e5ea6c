"""How a request proves who it is from: one small class per scheme.

An :class:`Auth` turns the final method, URL and body into headers.  Schemes that
need I/O (token exchange, credential refresh) do it here, in the shared path,
never in an adapter's hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from providers.errors import ConfigurationError

if TYPE_CHECKING:
    import httpx

    from providers.deployment import Deployment


class Auth(Protocol):
    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        """Raise ConfigurationError (naming what to set) when the deployment cannot authenticate."""

    async def headers(
        self,
        deployment: Deployment,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        client: httpx.AsyncClient,
    ) -> dict[str, str]:
        """Headers to add to a request that is otherwise final (``headers`` are already set)."""
        ...


def missing_key(deployment: Deployment, key_env: tuple[str, ...]) -> ConfigurationError:
    names = " or ".join(key_env) if key_env else "api_key in the model list"
    return ConfigurationError(
        f"no API key for {deployment.model!r}: set {names}", provider=deployment.provider
    )


@dataclass(frozen=True)
class Bearer:
    """``Authorization: Bearer <key>``.  ``required=False`` sends no header without a key;
    ``fallback`` is sent when there is no key (vLLM's servers accept any)."""

    required: bool = True
    fallback: str | None = None
    header: str = "authorization"
    scheme: str = "Bearer"

    def _key(self, deployment: Deployment) -> str | None:
        key = deployment.credentials.api_key
        value = key.get_secret_value() if key is not None else ""
        return value or self.fallback

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        if self.required and not self._key(deployment):
            raise missing_key(deployment, key_env)

    async def headers(
        self,
        deployment: Deployment,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        client: httpx.AsyncClient,
    ) -> dict[str, str]:
        key = self._key(deployment)
        return {self.header: f"{self.scheme} {key}"} if key else {}


BEARER = Bearer()
