"""Azure AI keys, or Microsoft Entra ID access tokens (``Authorization: Bearer ...``).

A key (``api_key`` / ``AZURE_AI_API_KEY``) is sent as ``Bearer <key>``, as before.  Without
one, an Entra ID token is sent: a ready one (``azure_ad_token`` param / ``AZURE_AD_TOKEN``) as
is, which needs nothing installed; else azure-identity (``pip install 'rerank-runner[azure]'``,
imported lazily) fetches one for ``azure_scope`` (default :data:`SCOPE`) with a service
principal's secret when ``tenant_id``, ``client_id`` and ``client_secret`` are all given (LiteLLM's
names; ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``), or with
``DefaultAzureCredential`` (managed identity, workload identity, the Azure CLI...) when
``azure_scope`` is set in the model list.  That last one is opted into rather than tried
whenever a key is missing: probing the credential chain can take seconds and a forgotten key
should fail at once, naming ``AZURE_AI_API_KEY``.  Fetching
runs in a thread; the token is kept per credential and scope in the dispatcher's token cache
and fetched again by one coroutine shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from providers.auth import missing_key
from providers.errors import AuthenticationError, ConfigurationError

if TYPE_CHECKING:
    from providers.auth import AuthRequest
    from providers.deployment import Deployment

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "REFRESH_MARGIN",
    "SCOPE",
    "SCOPE_PARAM",
    "TENANT_ID",
    "TOKEN",
    "AzureEntraAuth",
    "Token",
    "azure_identity",
    "fetch_token",
]

TOKEN, SCOPE_PARAM = "azure_ad_token", "azure_scope"
TENANT_ID, CLIENT_ID, CLIENT_SECRET = "tenant_id", "client_id", "client_secret"
SCOPE = "https://cognitiveservices.azure.com/.default"
"""The scope Azure AI Foundry (Azure AI services) tokens are issued for."""
REFRESH_MARGIN = 300.0
"""Seconds before expiry a token is fetched again."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_on: float
    """Unix time."""


def azure_identity(deployment: Deployment) -> ModuleType:
    try:
        import azure.identity
    except ImportError as exc:
        raise ConfigurationError(
            f"{deployment.model!r} has no API key and needs azure-identity for an Entra ID token: "
            "pip install 'rerank-runner[azure]' (or set AZURE_AI_API_KEY, or a ready token in "
            "azure_ad_token / AZURE_AD_TOKEN)",
            provider=deployment.provider,
        ) from exc
    return azure.identity


def fetch_token(secret: tuple[str, str, str] | None, scope: str) -> Token:
    """A token for ``scope``: with a service principal's (tenant, client, secret), else
    ``DefaultAzureCredential`` (blocking: run in a thread)."""
    import azure.identity

    credential: Any
    if secret is not None:
        credential = azure.identity.ClientSecretCredential(*secret)
    else:
        credential = azure.identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)
    found = credential.get_token(scope)
    return Token(str(found.token), float(found.expires_on))


def _secret(deployment: Deployment) -> tuple[str, str, str] | None:
    param = deployment.credentials.param
    given = (param(TENANT_ID), param(CLIENT_ID), param(CLIENT_SECRET))
    if not any(given):
        return None
    if not all(given):
        raise ConfigurationError(
            f"{deployment.model!r}: a service principal needs all of tenant_id, client_id and "
            "client_secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)",
            provider=deployment.provider,
        )
    tenant, client, secret = given
    assert tenant and client and secret
    return tenant, client, secret


@dataclass(frozen=True, eq=False)
class AzureEntraAuth:
    """``Authorization: Bearer`` with the key, else a ready or fetched Entra ID token."""

    fetch: Callable[[tuple[str, str, str] | None, str], Token] = fetch_token
    """(service principal or None, scope) -> token (injectable for tests)."""
    clock: Callable[[], float] = time.time

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        credentials = deployment.credentials
        if credentials.api_key is not None or credentials.param(TOKEN):
            return
        if _secret(deployment) is None and not credentials.param(SCOPE_PARAM):
            missing = missing_key(deployment, key_env)
            raise ConfigurationError(
                f"{missing.message} (or, for Entra ID, azure_ad_token / AZURE_AD_TOKEN, a service "
                "principal, or azure_scope in the model list)",
                provider=deployment.provider,
            )
        azure_identity(deployment)

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        deployment = request.deployment
        if deployment.credentials.api_key is not None:
            return {"authorization": f"Bearer {deployment.credentials.api_key.get_secret_value()}"}
        if token := deployment.credentials.param(TOKEN):
            return {"authorization": f"Bearer {token}"}
        identity = azure_identity(deployment)
        secret = _secret(deployment)
        scope = deployment.credentials.param(SCOPE_PARAM) or SCOPE

        async def fetched(_previous: Token | None) -> Token:
            try:
                return await asyncio.to_thread(self.fetch, secret, scope)
            except identity.CredentialUnavailableError as exc:
                raise ConfigurationError(
                    f"no Entra ID credential for {deployment.model!r}: {exc}", provider=deployment.provider
                ) from exc
            except Exception as exc:  # azure-identity's ClientAuthenticationError and transport errors
                raise AuthenticationError(
                    f"Entra ID token request failed: {type(exc).__name__}: {exc}",
                    provider=deployment.provider,
                ) from exc

        key = (self, secret[:2] if secret else None, scope)  # never the secret itself
        found = await request.tokens.get(key, fetched, fresh=self._fresh)
        return {"authorization": f"Bearer {found.value}"}

    def _fresh(self, token: Token) -> bool:
        return token.expires_on - REFRESH_MARGIN > self.clock()
