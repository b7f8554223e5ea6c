"""The one path every HTTP provider call takes: plan, auth, send, parse, retries, failover."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from providers import contract, params, wire
from providers.adapter import Capabilities, HttpAdapter, ParsedResponse, WireRequest, resolve_base
from providers.auth import AuthRequest
from providers.auth.token_cache import TokenCache
from providers.contract import ContractError
from providers.deployment import Deployment
from providers.errors import BadResponseError, ConfigurationError, ProviderError, RerankError
from providers.events import NO_OBSERVER, Observer, current_line
from providers.gate import Gate, OpenGate, estimate_tokens
from providers.planner import Part, merge, plan
from providers.redaction import PATTERNS_ONLY, Redactor
from providers.retry import RetryPolicy
from providers.types import RerankRequest, RerankResponse

__all__ = ["Candidate", "Dispatcher", "Plans", "Prepared", "add_usage", "prepare"]

log = logging.getLogger("rerank_runner.http")

Candidate = tuple[HttpAdapter, Deployment]
Plans = dict[Capabilities, list[Part]]
"""A line's plans by the capabilities they were made for: a line is planned once per distinct
capabilities, however many deployments share them."""


def add_usage(total: dict[str, Any] | None, more: dict[str, Any] | None) -> dict[str, Any] | None:
    """Sum two provider usage reports field by field (numbers add, nested dicts recurse)."""
    if more is None:
        return total
    if total is None:
        return dict(more)
    summed = dict(total)
    for key, value in more.items():
        if isinstance(value, dict):
            summed[key] = add_usage(summed.get(key), value)
        elif isinstance(value, int | float) and isinstance(summed.get(key), int | float):
            summed[key] = summed[key] + value
        else:
            summed.setdefault(key, value)
    return summed


def prepare(
    adapter: HttpAdapter, deployment: Deployment, request: RerankRequest, plans: Plans | None = None
) -> list[tuple[Part, WireRequest]]:
    """Every request a line will take on a deployment, built before the first is sent (pure: no
    I/O); ``plans`` holds the line's plans made so far, and gains this one.

    A line the endpoint cannot take, or a deployment missing its key or base URL,
    fails here with nothing spent.
    """
    adapter.auth.check(deployment, adapter.key_env)
    base = resolve_base(adapter, deployment)
    values = {**deployment.provider_params, **(request.provider_params or {})}
    if problem := params.check(adapter.params, adapter.provider, values, "provider_params"):
        raise ConfigurationError(problem, provider=adapter.provider)
    capabilities = adapter.capabilities(deployment)
    plans = {} if plans is None else plans
    if capabilities not in plans:
        plans[capabilities] = plan(request, capabilities)
    return [
        (part, params.forward(adapter.params, values, adapter.build_request(base, deployment, part.request)))
        for part in plans[capabilities]
    ]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A candidate deployment and every request a line takes on it, built once for every attempt."""

    adapter: HttpAdapter
    deployment: Deployment
    requests: list[tuple[Part, WireRequest]]


class Dispatcher:
    """Sends a line to one of its candidate deployments over one shared
    ``httpx.AsyncClient``: each attempt is admitted by the gate (rate limits, concurrency,
    cool-downs; it also picks the deployment), and failed attempts are retried by policy.
    Built once per worker, it also holds what lines share: the auth schemes' credentials and
    tokens, and which deployments were already reported unable to serve."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
        gate: Gate | None = None,
        *,
        max_response_bytes: int = wire.MAX_RESPONSE_BYTES,
        redactor: Redactor = PATTERNS_ONLY,
        observer: Observer = NO_OBSERVER,
        more_clients: Sequence[httpx.AsyncClient] = (),
    ) -> None:
        self.client = client
        self.clients = [client, *more_clients]
        """Lines take turns over these (all of a line's requests on one): httpcore scans its
        whole pool on every request, so a worker may split its connections over several."""
        self._client_turn = itertools.count()
        self.observer = observer
        self.max_response_bytes = max_response_bytes
        self.redactor = redactor
        """Scrubs every error this dispatcher raises (see :mod:`providers.redaction`)."""
        self.retry = retry
        self.gate = gate or OpenGate()
        self.tokens = TokenCache()
        self.warned: set[str] = set()
        """Labels of deployments logged as unable to serve: once per worker, not once per line."""

    async def rerank(
        self, adapter: HttpAdapter, deployment: Deployment, request: RerankRequest
    ) -> RerankResponse:
        return await self.rerank_any([(adapter, deployment)], request)

    def prepare_all(self, candidates: Sequence[Candidate], request: RerankRequest) -> list[Prepared]:
        """The candidates that can send this line, with their requests (the line planned once per
        distinct capabilities); a misconfigured deployment is skipped while another can serve,
        and when none can, the first problem is raised before any wait."""
        found: list[Prepared] = []
        problem: ConfigurationError | None = None
        plans: Plans = {}
        for adapter, deployment in candidates:
            try:
                found.append(Prepared(adapter, deployment, prepare(adapter, deployment, request, plans)))
            except ConfigurationError as exc:
                if deployment.label not in self.warned:
                    self.warned.add(deployment.label)
                    log.warning("%s cannot serve lines: %s", deployment.label, exc.message)
                problem = problem or exc
        if not found:
            assert problem is not None
            raise problem
        return found

    async def rerank_any(self, candidates: Sequence[Candidate], request: RerankRequest) -> RerankResponse:
        usable = self.prepare_all(candidates, request)
        prepared = {id(p.deployment): p for p in usable}
        deployments = [p.deployment for p in usable]
        requests = len(usable[0].requests)
        # the estimate renders every document again: only a token limit needs it
        tokens = estimate_tokens(request) if any(d.limits.tpm for d in deployments) else 1

        failed: set[int] = set()
        client = self.clients[next(self._client_turn) % len(self.clients)]
        tries = 0

        async def attempt() -> RerankResponse:
            nonlocal tries
            # a retry goes to a deployment that has not failed this line, while there is one
            fresh = [d for d in deployments if id(d) not in failed] or deployments
            lease = await self.gate.acquire(fresh, requests, tokens)
            tries += 1
            self._attempting(lease.deployment.label, tries)
            try:
                response = await self._send_line(prepared[id(lease.deployment)], request, client)
            except RerankError as exc:
                await self.gate.release(lease, exc)
                failed.add(id(lease.deployment))
                raise
            except BaseException:  # cancelled (the line's deadline, a shutdown) or a bug: free the slot
                await self.gate.release(lease, RerankError("the attempt did not finish"))
                raise
            await self.gate.release(lease, None)
            return response

        # with several deployments a throttled or failing one is cooled down by the gate and
        # the retry goes to another at once; alone, it waits (Retry-After, else backoff), a
        # Retry-After in the gate when the gate cools down, so a long one defers the line
        response, attempts = await self.retry.call(
            attempt, failover=len(usable) > 1, gate_cools=self.gate.cools_down
        )
        response.attempts = attempts
        return response

    def _attempting(self, deployment: str, attempt: int) -> None:
        if attempt > 1:
            self.observer.retry(deployment)
        if line := current_line.get():
            line.deployment, line.attempt = deployment, attempt

    async def _send_line(
        self, prepared: Prepared, request: RerankRequest, client: httpx.AsyncClient
    ) -> RerankResponse:
        answers = []
        usage: dict[str, Any] | None = None
        response_id = request_id = None
        for part, wire_request in prepared.requests:
            try:
                parsed, response = await self._call(prepared, wire_request, part.request, client)
            except RerankError as exc:  # auth exchanges and parsing included
                raise self.redactor.error(exc) from exc.__cause__
            answers.append((part, parsed.results))
            usage = add_usage(usage, parsed.usage)
            response_id = response_id or parsed.response_id
            request_id = request_id or wire.request_id(response.headers)
        return RerankResponse(
            results=merge(answers, request.top_n),
            response_id=response_id,
            request_id=request_id,
            usage=usage,
            requests=len(prepared.requests),
            deployment=prepared.deployment.label,
        )

    async def _call(
        self, prepared: Prepared, wire_request: WireRequest, request: RerankRequest, client: httpx.AsyncClient
    ) -> tuple[ParsedResponse, httpx.Response]:
        """One request's answer, its pages followed (``page_token``), held to the contract."""
        adapter = prepared.adapter
        parsed, response = await self._exchange(prepared, wire_request, request, client)
        tokens: set[str] = set()
        wanted = min(request.top_n or len(request.documents), len(request.documents))
        while (
            parsed.page_token is not None and adapter.next_page is not None and len(parsed.results) < wanted
        ):
            if parsed.page_token in tokens or len(tokens) >= len(request.documents):
                raise _bad_response("wrong answer: the pages do not end", adapter.provider, response)
            tokens.add(parsed.page_token)
            wire_request = adapter.next_page(wire_request, parsed.page_token)
            more, response = await self._exchange(prepared, wire_request, request, client)
            parsed = ParsedResponse(
                results=[*parsed.results, *more.results],
                response_id=parsed.response_id or more.response_id,
                usage=add_usage(parsed.usage, more.usage),
                page_token=more.page_token,
            )
        try:
            contract.check(parsed.results, request, may_omit=adapter.may_omit)
        except ContractError as exc:
            raise _bad_response(f"wrong answer: {exc}", adapter.provider, response) from exc
        return parsed, response

    async def _exchange(
        self, prepared: Prepared, wire_request: WireRequest, request: RerankRequest, client: httpx.AsyncClient
    ) -> tuple[ParsedResponse, httpx.Response]:
        adapter, deployment = prepared.adapter, prepared.deployment
        content = orjson.dumps(wire_request.body)
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            **deployment.headers,
            **wire_request.headers,
        }
        method, url = wire_request.method, wire_request.url
        auth = await adapter.auth.headers(
            AuthRequest(deployment, method, url, content, headers, self.client, self.tokens)
        )
        started = time.monotonic()
        try:
            response = await wire.send(
                client,
                adapter.provider,
                method,
                url,
                headers={**headers, **auth},
                content=content,
                max_bytes=self.max_response_bytes,
                redactor=self.redactor,
            )
        except ProviderError as exc:
            self.observer.request(deployment.label, exc.status, time.monotonic() - started)
            raise
        self.observer.request(deployment.label, response.status_code, time.monotonic() - started)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise _bad_response("response is not JSON", adapter.provider, response) from exc
        try:
            parsed = adapter.parse_response(body, request)
            if adapter.parse_headers is not None:
                parsed = adapter.parse_headers(response.headers, parsed)
        except ContractError as exc:
            raise _bad_response(f"wrong answer: {exc}", adapter.provider, response) from exc
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise _bad_response(f"unexpected response shape: {exc!r}", adapter.provider, response) from exc
        return parsed, response


def _bad_response(message: str, provider: str, response: httpx.Response) -> BadResponseError:
    return BadResponseError(
        message,
        provider=provider,
        status=response.status_code,
        request_id=wire.request_id(response.headers),
        body_excerpt=response.text[: wire.EXCERPT_CHARS],
    )
