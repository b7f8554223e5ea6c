"""IBM watsonx.ai credentials: a ready token, a Cloud Pak for Data Zen API key, or an IBM Cloud
API key exchanged at IBM IAM for a bearer token.

Precedence (as LiteLLM): ``token`` / ``WATSONX_TOKEN`` -> ``Authorization: Bearer``; else
``zen_api_key`` / ``WATSONX_ZENAPIKEY`` -> ``Authorization: ZenApiKey``; else the API key
(``WATSONX_APIKEY`` ...) is exchanged: ``POST {iam}/identity/token`` (form-encoded
``grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=...``; IAM base from the
``watsonx_iam_url`` param / ``WATSONX_IAM_URL``, default https://iam.cloud.ibm.com, a full
``.../identity/token`` URL also works) over the shared HTTP client.  The token is kept per
(IAM URL, key) in the dispatcher's token cache until shortly before it expires, and concurrent
lines share one exchange.
Unlike LiteLLM, a ready token does not also require an API key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from providers.errors import (
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ProviderError,
)

if TYPE_CHECKING:
    import httpx

    from providers.auth import AuthRequest
    from providers.deployment import Deployment

__all__ = [
    "DEFAULT_IAM",
    "GRANT_TYPE",
    "REFRESH_MARGIN_SECONDS",
    "TOKEN_PATH",
    "IamToken",
    "WatsonxAuth",
    "token_url",
]

TOKEN, ZEN_API_KEY, IAM_URL = "token", "zen_api_key", "watsonx_iam_url"
DEFAULT_IAM = "https://iam.cloud.ibm.com"
TOKEN_PATH = "/identity/token"
GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
REFRESH_MARGIN_SECONDS = 300.0
"""Exchange again this long before expiry (IAM tokens live an hour), or at 90% of a shorter life."""


@dataclass(frozen=True, slots=True)
class IamToken:
    value: str
    refresh_at: float


def token_url(iam: str) -> str:
    iam = iam.rstrip("/")
    return iam if iam.endswith(TOKEN_PATH) else f"{iam}{TOKEN_PATH}"


@dataclass(frozen=True, eq=False)
class WatsonxAuth:
    """``Authorization`` from a token, a Zen API key, or an IAM-exchanged API key (``clock``
    decides when a cached token is due; injectable for tests)."""

    clock: Callable[[], float] = time.time

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        creds = deployment.credentials
        if not (creds.param(TOKEN) or creds.param(ZEN_API_KEY) or _key(deployment)):
            keys = " or ".join(key_env)
            raise ConfigurationError(
                f"no credentials for {deployment.model!r}: set WATSONX_TOKEN, WATSONX_ZENAPIKEY "
                f"or an IBM Cloud API key ({keys})",
                provider=deployment.provider,
            )

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        deployment = request.deployment
        param = deployment.credentials.param
        if token := param(TOKEN):
            return {"authorization": f"Bearer {token}"}
        if zen := param(ZEN_API_KEY):
            return {"authorization": f"ZenApiKey {zen}"}
        iam, key = token_url(param(IAM_URL) or DEFAULT_IAM), _key(deployment)

        async def exchange(_previous: IamToken | None) -> IamToken:
            return await self._exchange(request.client, iam, key, deployment.provider)

        fresh = await request.tokens.get((self, iam, key), exchange, lambda t: self.clock() < t.refresh_at)
        return {"authorization": f"Bearer {fresh.value}"}

    async def _exchange(self, client: httpx.AsyncClient, iam: str, key: str, provider: str) -> IamToken:
        # imported here, not above: the registry imports this module, and enqueue.py, which
        # never sends a request, would otherwise start up with httpx (a tenth of its start-up)
        from providers import wire

        form = {"grant_type": GRANT_TYPE, "apikey": key}
        try:
            response = await wire.send(
                client, provider, "POST", iam, data=form, headers={"accept": "application/json"}
            )
        except ProviderError as exc:
            # IAM answers 400 for an unknown or disabled key: that is an authentication failure
            kind = AuthenticationError if exc.status in (400, 401, 403) else type(exc)
            raise kind(
                f"IBM IAM token exchange failed: {exc.message}",
                provider=provider,
                status=exc.status,
                request_id=exc.request_id,
                body_excerpt=exc.body_excerpt,
                retry_after=exc.retry_after,
            ) from exc
        now = self.clock()
        try:
            answer: Any = response.json()
            token = str(answer["access_token"])
            # the earlier of IAM's absolute expiry and its lifetime on our clock: safe under clock skew
            limits = [now + float(answer["expires_in"])] if "expires_in" in answer else []
            limits += [float(answer["expiration"])] if "expiration" in answer else []
            expires = min(limits)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadResponseError(
                f"unexpected IBM IAM token response: {exc!r}",
                provider=provider,
                status=response.status_code,
                body_excerpt=response.text[: wire.EXCERPT_CHARS],
            ) from exc
        return IamToken(token, expires - min(REFRESH_MARGIN_SECONDS, (expires - now) / 10))


def _key(deployment: Deployment) -> str:
    key = deployment.credentials.api_key
    return key.get_secret_value() if key is not None else ""
