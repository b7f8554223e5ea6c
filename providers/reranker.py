"""The single entry point a worker calls: a model name and a request in, ranked results out."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

from providers import local
from providers.deployment import Credentials, Deployment
from providers.http import HttpTransport
from providers.registry import HTTP_ADAPTERS, LOCAL_PROVIDER, deployment_for
from providers.types import RerankRequest, RerankResponse


class Reranker:
    """Resolves a model name (a model list's public name, else ``provider/model``
    with the provider's credentials) and calls the deployment."""

    def __init__(
        self,
        transport: HttpTransport,
        credentials: Mapping[str, Credentials],
        model_list: Mapping[str, list[Deployment]] | None = None,
    ) -> None:
        self.transport = transport
        self.credentials = credentials
        self.model_list = model_list or {}
        self._turns: dict[str, Iterator[Deployment]] = {}

    def pick(self, model: str) -> Deployment:
        """The deployment to use for the next line of ``model`` (round robin for now)."""
        deployments = self.model_list.get(model)
        if not deployments:
            return deployment_for(model, self.credentials)
        if model not in self._turns:
            self._turns[model] = itertools.cycle(deployments)
        return next(self._turns[model])

    async def rerank(self, model: str, request: RerankRequest) -> RerankResponse:
        deployment = self.pick(model)
        if deployment.provider == LOCAL_PROVIDER:
            response = await local.rerank(deployment.wire_model, request)
        else:
            adapter = HTTP_ADAPTERS[deployment.provider]
            response = await self.transport.rerank(adapter, deployment, request)
        response.deployment = deployment.label
        return response
