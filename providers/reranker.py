"""The single entry point a worker calls: a model name and a request in, ranked results out."""

from __future__ import annotations

from collections.abc import Mapping

from providers import local
from providers.deployment import Credentials
from providers.http import HttpTransport
from providers.registry import HTTP_ADAPTERS, LOCAL_PROVIDER, deployment_for
from providers.types import RerankRequest, RerankResponse


class Reranker:
    def __init__(self, transport: HttpTransport, credentials: Mapping[str, Credentials]) -> None:
        self.transport = transport
        self.credentials = credentials

    async def rerank(self, model: str, request: RerankRequest) -> RerankResponse:
        deployment = deployment_for(model, self.credentials)
        if deployment.provider == LOCAL_PROVIDER:
            return await local.rerank(deployment.wire_model, request)
        adapter = HTTP_ADAPTERS[deployment.provider]
        return await self.transport.rerank(adapter, deployment, request)
