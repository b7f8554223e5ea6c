"""Fixtures: a real redis-server per test session, flushed per test; worker processes; a Redis probe."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from arq import ArqRedis

from jobs.connection import open_pool
from jobs.embedded import EmbeddedRedis
from tests.process_tools import RedisProbe, Workers


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = sync_redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await open_pool(redis_url)
    yield pool
    await pool.aclose()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def probe(redis_url: str) -> Iterator[RedisProbe]:
    """Cheap synchronous reads of the runner's Redis keys."""
    client = RedisProbe(redis_url)
    yield client
    client.close()
