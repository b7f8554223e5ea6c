"""Reach the Redis a command works against: ``REDIS_URL``, or the embedded one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from jobs.embedded import EmbeddedRedis
from jobs.serializer import deserialize, serialize

DEFAULT_STATE_DIR = Path(".rerank-runner")


@dataclass
class Connection:
    redis: ArqRedis
    url: str
    embedded: bool


def redacted(url: str) -> str:
    """The URL with any password replaced, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_pool(url: str) -> ArqRedis:
    return await create_pool(
        RedisSettings.from_dsn(url), job_serializer=serialize, job_deserializer=deserialize
    )


@contextlib.asynccontextmanager
async def connect(redis_url: str | None, state_dir: Path) -> AsyncIterator[Connection]:
    """Connect to ``redis_url``; without one, start (or reuse) the embedded server."""
    server = None if redis_url else EmbeddedRedis(state_dir).start()
    url = redis_url or (server.url if server else "")
    try:
        pool = await open_pool(url)
        try:
            yield Connection(redis=pool, url=url, embedded=server is not None)
        finally:
            await pool.aclose()
    finally:
        if server:
            server.stop()
