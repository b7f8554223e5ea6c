"""The single entry point a worker calls: a model name and a request in, ranked results out."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from providers.adapters import local
from providers.deployment import Credentials, Deployment, Limits
from providers.dispatcher import Dispatcher
from providers.errors import ConfigurationError, DeferredError, RerankError
from providers.registry import HTTP_ADAPTERS, LOCAL_PROVIDER, deployment_for
from providers.types import RerankRequest, RerankResponse

__all__ = ["Reranker"]

log = logging.getLogger("rerank_runner.reranker")


class Reranker:
    """Resolves a model name (a model list's public name, else ``provider/model`` with the
    provider's credentials) to its deployments, lets the dispatcher pick one per attempt,
    and moves on to the name's fallbacks when it fails."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        credentials: Mapping[str, Credentials],
        model_list: Mapping[str, list[Deployment]] | None = None,
        fallbacks: Mapping[str, Sequence[str]] | None = None,
        *,
        raw_limits: Limits | None = None,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.credentials = credentials
        self.model_list = model_list or {}
        self.fallbacks = fallbacks or {}
        self.raw_limits = raw_limits or Limits()
        """Limits for raw ``provider/model`` names (a model list's entries carry their own)."""
        self.unavailable = unavailable or {}
        """Model list names with no usable entry (e.g. unset variables) -> why."""

    def candidates(self, model: str) -> list[Deployment]:
        if listed := self.model_list.get(model):
            return listed
        if reason := self.unavailable.get(model):
            raise ConfigurationError(f"model {model!r} is unavailable on this worker: {reason}")
        return [replace(deployment_for(model, self.credentials), limits=self.raw_limits)]

    def ranks_locally(self, model: str) -> bool:
        """Whether the name (or one of its fallbacks) is served by a local model, which scores
        with collection statistics; False for a name that does not resolve (its line fails)."""
        try:
            names = [model, *self.fallbacks.get(model, ())]
            return any(d.provider == LOCAL_PROVIDER for name in names for d in self.candidates(name))
        except ConfigurationError:
            return False

    async def rerank(self, model: str, request: RerankRequest) -> RerankResponse:
        names = [model, *self.fallbacks.get(model, ())]
        for position, name in enumerate(names):
            try:
                response = await self._rerank_on(name, request)
            except DeferredError:
                raise
            except RerankError as exc:
                if position == len(names) - 1:
                    raise
                log.warning("%s failed (%s); falling back to %s", name, exc, names[position + 1])
                continue
            if name != model:
                response.fallback_from = model
            return response
        raise AssertionError("unreachable: the last name re-raises")

    async def _rerank_on(self, model: str, request: RerankRequest) -> RerankResponse:
        deployments = self.candidates(model)
        if deployments[0].provider == LOCAL_PROVIDER:
            response = await local.rerank(deployments[0].wire_model, request)
            response.deployment = deployments[0].label
            return response
        candidates = [(HTTP_ADAPTERS[d.provider], d) for d in deployments]
        return await self.dispatcher.rerank_any(candidates, request)
