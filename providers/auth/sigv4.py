"""AWS Signature Version 4, signed by botocore's own signer (never by hand).

botocore is an optional extra (``pip install 'rerank-runner[bedrock]'``), imported only when
an AWS deployment is checked or signed.  Credentials, each set taken whole from one source:
``aws_access_key_id`` / ``aws_secret_access_key`` (+ ``aws_session_token``) in the model list;
else a model list ``aws_profile_name``; else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(+ ``AWS_SESSION_TOKEN``); else botocore's standard chain (``AWS_PROFILE``, config and
credentials files, SSO, web identity, container and instance roles).  The chain is resolved
once per profile in a thread and kept in the dispatcher's token cache; botocore refreshes
expiring role credentials itself, and that refresh also runs off the event loop.  Every header
the request carries (content type, accept, the deployment's extra headers) is signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from providers.errors import ConfigurationError

if TYPE_CHECKING:
    from providers.auth import AuthRequest
    from providers.auth.token_cache import TokenCache
    from providers.deployment import Deployment

__all__ = [
    "AMBIENT",
    "CREDENTIAL_PARAMS",
    "ENV_PAIR",
    "EXPLICIT",
    "PROFILE",
    "SIGNED_HEADERS",
    "UNSUPPORTED",
    "SigV4Auth",
    "botocore",
]

EXPLICIT = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
"""LiteLLM's params for a key pair (+ session token) in the model list."""
AMBIENT = ("aws_env_access_key_id", "aws_env_secret_access_key", "aws_env_session_token")
"""The same from the environment, kept apart so an ambient session token never joins a model
list key pair (a mixed set signs nothing valid)."""
PROFILE = "aws_profile_name"
ENV_PAIR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
UNSUPPORTED = ("aws_role_name", "aws_session_name", "aws_web_identity_token", "aws_sts_endpoint")
"""LiteLLM's role-assumption params: refused, since ignoring them would sign as another identity."""
CREDENTIAL_PARAMS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys((*EXPLICIT, PROFILE, *UNSUPPORTED), ()),
    AMBIENT[0]: ENV_PAIR[:1],
    AMBIENT[1]: ENV_PAIR[1:],
    AMBIENT[2]: ("AWS_SESSION_TOKEN",),
}
"""``param_env`` entries for the credentials."""
SIGNED_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


def botocore(deployment: Deployment, extra: str) -> ModuleType:
    """botocore with its signer, request and session modules loaded; a clear error without it."""
    try:
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import botocore.exceptions
        import botocore.session
    except ImportError as exc:
        raise ConfigurationError(
            f"{deployment.model!r} needs botocore to sign AWS requests: pip install 'rerank-runner[{extra}]'",
            provider=deployment.provider,
        ) from exc
    return cast(ModuleType, botocore)  # untyped: its modules are used as Any


@dataclass(frozen=True, eq=False)
class SigV4Auth:
    """Adds ``Authorization: AWS4-HMAC-SHA256 ...``, ``X-Amz-Date`` (and
    ``X-Amz-Security-Token`` with session credentials) for ``service`` in ``region(deployment)``."""

    service: str
    region: Callable[[Deployment], str]
    extra: str = "bedrock"
    """The pip extra that installs botocore, for the error message."""

    def check(self, deployment: Deployment, key_env: tuple[str, ...]) -> None:
        botocore(deployment, self.extra)
        self.region(deployment)
        if refused := [name for name in UNSUPPORTED if deployment.credentials.param(name)]:
            raise ConfigurationError(
                f"{', '.join(refused)} for {deployment.model!r} is not supported: put the role in an AWS "
                "profile (role_arn, source_profile or web_identity_token_file) and set aws_profile_name",
                provider=deployment.provider,
            )
        for names, labels in ((EXPLICIT, EXPLICIT), (AMBIENT, ENV_PAIR)):
            given = [deployment.credentials.param(name) for name in names[:2]]
            if bool(given[0]) != bool(given[1]):
                present, absent = labels[:2] if given[0] else labels[1::-1]
                raise ConfigurationError(
                    f"incomplete AWS credentials for {deployment.model!r}: {present} is set without "
                    f"{absent}; set both, or neither to use the AWS credential chain",
                    provider=deployment.provider,
                )

    async def headers(self, request: AuthRequest) -> dict[str, str]:
        deployment = request.deployment
        boto = botocore(deployment, self.extra)
        credentials = await self._credentials(deployment, boto, request.tokens)
        signed = boto.awsrequest.AWSRequest(
            method=request.method, url=request.url, data=request.body, headers=dict(request.headers)
        )
        boto.auth.SigV4Auth(credentials, self.service, self.region(deployment)).add_auth(signed)
        return {name.lower(): signed.headers[name] for name in SIGNED_HEADERS if name in signed.headers}

    async def _credentials(self, deployment: Deployment, boto: ModuleType, tokens: TokenCache) -> Any:
        param = deployment.credentials.param
        profile = param(PROFILE)
        sources = (EXPLICIT,) if profile else (EXPLICIT, AMBIENT)  # a named profile beats the environment
        for key_id, secret, token in ([param(name) for name in names] for names in sources):
            if key_id and secret:
                return boto.credentials.ReadOnlyCredentials(key_id, secret, token)

        async def resolve(_previous: Any) -> Any:
            return await asyncio.to_thread(_from_chain, boto, profile, deployment)

        found = await tokens.get((self, profile), resolve)
        if found is None:
            raise ConfigurationError(
                f"no AWS credentials for {deployment.model!r}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or aws_access_key_id/aws_secret_access_key in the model list), "
                "or configure a profile, SSO or an instance role",
                provider=deployment.provider,
            )
        if isinstance(found, boto.credentials.RefreshableCredentials) and found.refresh_needed():
            return await asyncio.to_thread(found.get_frozen_credentials)
        return found.get_frozen_credentials()


def _from_chain(boto: ModuleType, profile: str | None, deployment: Deployment) -> Any:
    try:
        return boto.session.Session(profile=profile).get_credentials()
    except boto.exceptions.BotoCoreError as exc:
        raise ConfigurationError(
            f"AWS credential chain failed for {deployment.model!r}: {exc}", provider=deployment.provider
        ) from exc
