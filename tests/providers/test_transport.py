"""The workers' HTTP transports (providers/transport.py) against a raw local server that misbehaves
at the socket level: every fault a provider's network can produce reaches ``providers.wire.send``
as the same typed error on aiohttp as on httpx's own transport, and a connection left in a bad
state is never handed to the next request."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest

from jobs.settings import load_settings
from providers import wire
from providers.errors import BadResponseError, ProviderConnectionError, ProviderTimeoutError, RateLimitedError
from providers.transport import HTTP_TRANSPORTS, AiohttpTransport, HttpTransport, http_client
from worker import http_clients

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_BODY = orjson.dumps({"results": [{"index": 0, "relevance_score": 0.5}]})


@pytest.fixture(params=HTTP_TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> HttpTransport:
    transport: HttpTransport = request.param
    return transport


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(the request's head, its body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head, await reader.readexactly(length)


def answer(status: int, body: bytes, *headers: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-length: {len(body) if length is None else length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RawServer:
    """Serves ``handler`` once per request, on kept-alive connections; counts connections."""

    def __init__(self, handler: Callable[[asyncio.StreamWriter], Awaitable[bool]]) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, _ = await read_request(reader)
                self.heads.append(head)
                if not await self.handler(writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[asyncio.StreamWriter], Awaitable[bool]],
) -> AsyncIterator[tuple[str, RawServer]]:
    raw = RawServer(handler)
    server = await asyncio.start_server(raw.serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v2/rerank", raw
    finally:
        server.close()
        await server.wait_closed()


async def post(
    client: httpx.AsyncClient, url: str, max_bytes: int = wire.MAX_RESPONSE_BYTES
) -> httpx.Response:
    return await wire.send(client, "cohere", "POST", url, content=b"{}", max_bytes=max_bytes)


def client_on(kind: HttpTransport, timeout: float = 5) -> httpx.AsyncClient:
    return http_client(kind, timeout, 4, trust_env=False)


async def test_connections_are_kept_alive_and_answers_read_whole(kind: HttpTransport) -> None:
    async def ok(writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, OK_BODY, "x-request-id: r-1"))
        return True

    async with serving(ok) as (url, raw), client_on(kind) as client:
        for _ in range(5):
            response = await post(client, url)
            assert orjson.loads(response.content) == orjson.loads(OK_BODY)
            assert wire.request_id(response.headers) == "r-1"
    assert raw.connections == 1


async def test_a_connection_dropped_mid_answer_is_a_connection_error(kind: HttpTransport) -> None:
    async def cut(writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, OK_BODY[:10], length=len(OK_BODY)))
        await writer.drain()
        return False

    async with serving(cut) as (url, _), client_on(kind) as client:
        with pytest.raises(ProviderConnectionError) as raised:
            await post(client, url)
    assert raised.value.retryable


async def test_a_connection_closed_before_any_answer_is_a_connection_error(kind: HttpTransport) -> None:
    async def hang_up(writer: asyncio.StreamWriter) -> bool:
        return False

    async with serving(hang_up) as (url, _), client_on(kind) as client:
        with pytest.raises(ProviderConnectionError):
            await post(client, url)


@pytest.mark.parametrize("where", ["before the headers", "mid-body"])
async def test_a_stalled_provider_is_a_retryable_timeout(kind: HttpTransport, where: str) -> None:
    async def stall(writer: asyncio.StreamWriter) -> bool:
        if where == "mid-body":
            writer.write(answer(200, OK_BODY[:10], length=len(OK_BODY)))
            await writer.drain()
        await asyncio.sleep(3)
        return False

    async with serving(stall) as (url, _), client_on(kind, timeout=0.2) as client:
        with pytest.raises(ProviderTimeoutError) as raised:
            await post(client, url)
    assert raised.value.retryable


async def test_retry_after_and_the_request_id_are_read_off_a_429(kind: HttpTransport) -> None:
    async def throttle(writer: asyncio.StreamWriter) -> bool:
        body = orjson.dumps({"message": "slow down"})
        writer.write(answer(429, body, "retry-after: 3", "x-request-id: r-429"))
        return True

    async with serving(throttle) as (url, _), client_on(kind) as client:
        with pytest.raises(RateLimitedError) as raised:
            await post(client, url)
    assert (raised.value.retry_after, raised.value.request_id, raised.value.message) == (
        3.0,
        "r-429",
        "slow down",
    )


async def test_a_gzipped_answer_is_decoded(kind: HttpTransport) -> None:
    async def zipped(writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, gzip.compress(OK_BODY), "content-encoding: gzip"))
        return True

    async with serving(zipped) as (url, _), client_on(kind) as client:
        assert (await post(client, url)).content == OK_BODY


async def test_a_body_over_the_cap_is_refused_and_its_connection_not_reused(kind: HttpTransport) -> None:
    part = b"x" * 500_000
    big = b"HTTP/1.1 200 X\r\ntransfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(part), part) * 2
    answers = [big + b"0\r\n\r\n", answer(200, OK_BODY)]

    async def sizes(writer: asyncio.StreamWriter) -> bool:
        writer.write(answers.pop(0))
        return True

    async with serving(sizes) as (url, raw), client_on(kind) as client:
        with pytest.raises(BadResponseError, match="RR_MAX_RESPONSE_BYTES"):
            await post(client, url, max_bytes=64 * 1024)
        assert (await post(client, url)).content == OK_BODY
    assert raw.connections == 2


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


async def test_the_environments_proxy_carries_requests_and_no_proxy_is_honoured(
    kind: HttpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def ok(writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, OK_BODY))
        return True

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with serving(ok) as (proxy_url, proxy), serving(ok) as (direct_url, direct):
        monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/v2/rerank"))
        monkeypatch.setenv("NO_PROXY", "localhost")
        async with http_client(kind, 5, 4) as client:
            assert (await post(client, "http://provider.invalid/v2/rerank")).content == OK_BODY
        assert proxy.heads[0].startswith(b"POST http://provider.invalid/v2/rerank ")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with http_client(kind, 5, 4) as client:
            assert (await post(client, direct_url)).content == OK_BODY
    assert (proxy.connections, direct.connections) == (1, 1)


@pytest.mark.parametrize(("kind", "clients"), [("aiohttp", 1), ("httpcore", 4)])
def test_a_worker_holds_clients_on_its_transport(kind: HttpTransport, clients: int) -> None:
    settings = load_settings(http_transport=kind, max_jobs=64)
    made = http_clients(settings)
    assert len(made) == clients
    for client in made:
        assert isinstance(client._transport, AiohttpTransport) == (kind == "aiohttp")
        assert client.timeout == httpx.Timeout(settings.http_timeout)
