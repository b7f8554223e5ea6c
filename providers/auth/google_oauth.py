"""Google OAuth2 access tokens (``Authorization: Bearer ...``) for Google Cloud APIs.

A ready token (``vertex_access_token`` param / ``VERTEX_AI_ACCESS_TOKEN``) is sent as is and
needs nothing installed: that is how tests, and callers who mint tokens themselves, run.
Otherwise google-auth (``pip install 'rerank-runner[vertex]'``, imported lazily) loads
``vertex_credentials`` -- a path to, or the JSON text of, a service-account or authorized-user
credentials file -- or else Application Default Credentials (any kind, e.g. workload identity
federation).  Loading and refreshing run in a thread; the credentials are kept per source in
the dispatcher's token cache and refreshed by one coroutine when google-auth says the token is
no longer valid (shortly before it expires).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from providers.errors import (
    AuthenticationError,
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ServerError,
)

if TYPE_CHECKING:
    from providers.auth import AuthRequest
    from providers.deployment import Deployment

__all__ = ["SCOPES", "GoogleAuth", "google_auth", "load_credentials"]

TOKEN, CREDENTIALS = "vertex_access_token", "vertex_credentials"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def google_auth(deployment: Deployment, extra: str) -> ModuleType:
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError as exc:
        raise ConfigurationError(
            f"{deployment.model!r} needs google-auth for Google credentials: pip install "
            f"'rerank-runner[{extra}]' (or give a ready token in {TOKEN} / VERTEX_AI_ACCESS_TOKEN)",
            provider=deployment.provider,
        ) from exc
    return google.auth


def load_credentials(source: str | None) -> Any:
    """``source``: the JSON text or the path of a service-account or authorized-user file; None:
    Application Default Credentials (which also covers workload identity federation)."""
    import google.auth
    from google.oauth2 import credentials, service_account

    if source is None:
        found, _project = google.auth.default(scopes=SCOPES)
        return found
    info = json.loads(source if source.lstrip().startswith("{") else Path(source).read_text())
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    if kind == "authorized_user":
        return credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, scopes=SCOPES
        )
    # the generic loaders are deprecated for unvalidated input; other kinds go through ADC
    raise ValueError(
        f"credentials of type {kind!r} are not supported here; point GOOGLE_APPLICATION_CREDENTIALS "
        "at them and leave vertex_credentials unset to use Application Default Credentials"
    )


@dataclass(frozen=True, eq=False)
class GoogleAuth:
    """``Authorization: Bearer`` from a ready token or from google-auth credentials."""

    extra: str = "vertex"
    """The pip extra that installs google-auth, for the error message."""
    load: Callable[[str | None], Any] = load_credentials
    """Credentials source -> google-auth credentials (injectable for tests)."""

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        if not deployment.credentials.param(TOKEN):
            google_auth(deployment, self.extra)

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        deployment = request.deployment
        if token := deployment.credentials.param(TOKEN):
            return {"authorization": f"Bearer {token}"}
        google = google_auth(deployment, self.extra)
        source = deployment.credentials.param(CREDENTIALS)

        async def refreshed(previous: Any) -> Any:
            credentials = previous
            if credentials is None:
                try:
                    credentials = await asyncio.to_thread(self._load, google, source, deployment)
                except ConfigurationError as exc:
                    # remembered: a set-up that cannot load (ADC probing can take seconds) stays broken
                    # until a restart, so lines fail fast instead of each trying again
                    return exc
            if not credentials.valid:
                await asyncio.to_thread(_refresh, google, credentials, deployment)
            return credentials

        found = await request.tokens.get((self, source), refreshed, fresh=_usable)
        if isinstance(found, ConfigurationError):
            raise ConfigurationError(found.message, provider=found.provider)
        return {"authorization": f"Bearer {found.token}"}

    def _load(self, google: ModuleType, source: str | None, deployment: Deployment) -> Any:
        try:
            return self.load(source)
        except (google.exceptions.DefaultCredentialsError, ValueError, OSError) as exc:
            where = f"{CREDENTIALS} / VERTEXAI_CREDENTIALS" if source else "Application Default Credentials"
            raise ConfigurationError(
                f"cannot load Google credentials for {deployment.model!r} from {where}: {exc}",
                provider=deployment.provider,
            ) from exc


def _usable(cached: Any) -> bool:
    return isinstance(cached, ConfigurationError) or bool(cached.valid)


def _refresh(google: ModuleType, credentials: Any, deployment: Deployment) -> None:
    from providers.auth.google_transport import HttpxRequest

    try:
        credentials.refresh(HttpxRequest())
    except google.exceptions.TransportError as exc:
        raise ProviderConnectionError(
            f"Google token refresh failed: {exc}", provider=deployment.provider
        ) from exc
    except google.exceptions.RefreshError as exc:
        kind: type[ProviderError] = ServerError if getattr(exc, "retryable", False) else AuthenticationError
        raise kind(f"Google token refresh failed: {exc}", provider=deployment.provider) from exc
