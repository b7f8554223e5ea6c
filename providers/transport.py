"""The workers' HTTP clients: httpx's API over aiohttp's connection pool (``RR_HTTP_TRANSPORT``).

httpx stays the one API every provider call is written against (:mod:`providers.wire` turns its
exceptions into the :mod:`providers.errors` tree); only the transport under it changes.  httpcore,
httpx's own transport, costs a worker about as much CPU per request as the rest of a line
(docs/performance.md: its pool scan polls every idle connection on each request); aiohttp's pool
hands out a connection without a scan, and parses responses in C.

:class:`AiohttpTransport` maps aiohttp's failures onto httpx's exception classes once, here, so
:func:`providers.wire.send` sees the same exceptions whichever transport runs: a timeout is a
timeout, a refused or dropped connection a connection error, a bad URL a bad URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from providers.types import HTTP_TRANSPORTS, HttpTransport

__all__ = ["CHUNK_BYTES", "HTTP_TRANSPORTS", "AiohttpTransport", "HttpTransport", "Proxy", "http_client"]

Proxy = tuple[URL, aiohttp.BasicAuth | None] | None
"""A proxy for an origin and its credentials, or None: straight there."""
CHUNK_BYTES = 64 * 1024
"""How much of a body is handed up at a time (the body cap in providers/wire.py counts them)."""


@contextlib.contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx ones :mod:`providers.wire` translates (most specific
    first: aiohttp's timeouts are also connection errors)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {exc}", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed status line or headers
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for chunk in self._response.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # a body read to its end gives the connection back to the pool; one cut short (a cap
        # hit, a cancelled line) closes it, so no later request reads the rest of it
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one ``aiohttp.ClientSession`` (opened on first use, inside the
    running loop): up to ``connections`` open at once, all kept alive for ``keepalive_expiry``
    seconds.  Proxies and CA files come from the environment, as httpx's own transport takes
    them (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE``; not with
    ``trust_env=False``); bodies are handed up undecoded and cookies left alone: httpx decodes
    and keeps them as it does for its own transport."""

    def __init__(self, connections: int, keepalive_expiry: float = 5.0, *, trust_env: bool = True) -> None:
        self.connections = connections
        self.keepalive_expiry = keepalive_expiry
        self.trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], Proxy] = {}
        """The environment's proxy per origin, looked up once (aiohttp's own ``trust_env``
        looks it up in a thread on every request, and reads ``~/.netrc`` for the provider's
        host too: our requests carry their own credentials)."""

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.connections,
            limit_per_host=0,
            keepalive_timeout=self.keepalive_expiry,
            ssl=httpx.create_ssl_context(trust_env=self.trust_env),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return self._session

    def _proxy(self, url: httpx.URL) -> Proxy:
        origin = (url.scheme, url.host, url.port)
        if origin not in self._proxies:
            found: Proxy = None
            if self.trust_env:
                with contextlib.suppress(LookupError):
                    found = get_env_proxy_for_url(URL(str(url)))
            self._proxies[origin] = found
        return self._proxies[origin]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        proxy = self._proxy(request.url)
        with _as_httpx(request):
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                allow_redirects=False,
                proxy=proxy[0] if proxy else None,
                proxy_auth=proxy[1] if proxy else None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # aiohttp's connector closes its sockets on the next loop iteration
            await asyncio.sleep(0)
            self._session = None


def http_client(
    kind: HttpTransport, timeout: float, connections: int, *, trust_env: bool = True
) -> httpx.AsyncClient:
    """A worker's httpx client on ``kind`` (``connections`` open at most, all kept alive;
    ``trust_env=False``: no proxies or CA files from the environment, as in tests)."""
    if kind == "aiohttp":
        transport = AiohttpTransport(connections, trust_env=trust_env)
        return httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits, trust_env=trust_env)
