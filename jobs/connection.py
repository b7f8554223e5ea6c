"""Reach the Redis a command works against: ``REDIS_URL``, or the embedded one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from arq import ArqRedis, create_pool
from redis import exceptions as redis_errors
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed

from jobs.embedded import EmbeddedRedis
from jobs.packing import pack_with_hiredis
from jobs.redis_url import RedisUrlError, redacted, redis_settings
from jobs.serializer import deserialize, serialize

__all__ = [
    "CONNECT_ATTEMPTS",
    "CONNECT_RETRY_SECONDS",
    "DEFAULT_STATE_DIR",
    "EXIT_REDIS_UNAVAILABLE",
    "MIN_REDIS_VERSION",
    "REFUSED",
    "UNREACHABLE",
    "Connection",
    "RedisUnavailableError",
    "RedisUrlError",
    "connect",
    "open_pool",
    "redacted",
    "redis_version_problem",
    "unavailable",
]

DEFAULT_STATE_DIR = Path(".rerank-runner")
EXIT_REDIS_UNAVAILABLE = 4
"""Exit code of every command when Redis cannot be reached or refuses the connection."""
MIN_REDIS_VERSION = (6, 2)
"""The oldest Redis a worker runs against: its claim script uses ``SET ... GET`` (6.2)."""
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_SECONDS = 0.5


@dataclass
class Connection:
    redis: ArqRedis
    url: str
    embedded: bool


class RedisUnavailableError(Exception):
    """Redis could not be reached, refused the credentials, or dropped the connection.

    The message is one line and shows the URL without its password."""


REFUSED = (redis_errors.AuthenticationError, redis_errors.NoPermissionError, redis_errors.AuthorizationError)
UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError, TimeoutError)


def _reason(exc: BaseException, secret: str | None) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    return text.replace(secret, "***") if secret else text


def unavailable(url: str, exc: BaseException, doing: str = "cannot reach") -> RedisUnavailableError:
    """The one-line error for a failed Redis call against ``url`` (the password never shown)."""
    try:
        secret = redis_settings(url).password
    except RedisUrlError:
        secret = None
    if isinstance(exc, REFUSED):
        return RedisUnavailableError(
            f"Redis at {redacted(url)} refused the connection: {_reason(exc, secret)}"
        )
    return RedisUnavailableError(f"{doing} Redis at {redacted(url)}: {_reason(exc, secret)}")


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, UNREACHABLE) and not isinstance(exc, REFUSED)


async def open_pool(
    url: str,
    *,
    attempts: int = CONNECT_ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> ArqRedis:
    """A pool for ``url``, its first PING answered.  A refused or unreachable Redis is tried
    ``attempts`` times, then raises RedisUnavailableError; a bad URL raises RedisUrlError."""
    settings = redis_settings(url)
    settings.conn_retries = 0  # retried here, where wrong credentials are not retried
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_fixed(CONNECT_RETRY_SECONDS),
        retry=retry_if_exception(_worth_retrying),
        reraise=True,
        sleep=sleep or asyncio.sleep,
    )
    try:
        async for attempt in retrying:
            with attempt:
                pool = await create_pool(settings, job_serializer=serialize, job_deserializer=deserialize)
                await pack_with_hiredis(pool)
                return pool
    except (*UNREACHABLE, *REFUSED) as exc:
        raise unavailable(url, exc) from None
    raise AssertionError("unreachable: tenacity returns or re-raises")


@contextlib.asynccontextmanager
async def connect(redis_url: str | None, state_dir: Path) -> AsyncIterator[Connection]:
    """Connect to ``redis_url``; without one, start (or reuse) the embedded server."""
    server = None if redis_url else EmbeddedRedis(state_dir).start()
    url = redis_url or (server.url if server else "")
    try:
        pool = await open_pool(url)
        try:
            yield Connection(redis=pool, url=url, embedded=server is not None)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise unavailable(url, exc, "lost the connection to") from None
        finally:
            await pool.aclose()
    finally:
        if server:
            server.stop()


async def redis_version_problem(redis: ArqRedis) -> str | None:
    """Why this Redis is too old for a worker (one line), or None.  A server that keeps ``INFO``
    from us (an ACL, a managed service), names no version or drops the connection is given the
    benefit of the doubt (the worker's own outage handling and errors take over)."""
    try:
        server = await redis.info("server")
    except redis_errors.RedisError:
        return None
    version = str(server.get("redis_version", ""))
    found = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if len(found) < 2 or found >= MIN_REDIS_VERSION:
        return None
    wanted = ".".join(map(str, MIN_REDIS_VERSION))
    return f"Redis {version} is too old: workers need Redis {wanted} or newer"
