"""A worker refuses a Redis older than its claim script needs (jobs.connection)."""

from __future__ import annotations

from typing import Any

import pytest
from arq import ArqRedis
from redis.exceptions import NoPermissionError

from jobs.connection import open_pool, redis_version_problem


class ServerInfo:
    """A server's ``INFO server`` section, as a Redis of another version would answer it."""

    def __init__(self, version: str | None) -> None:
        self.version = version

    async def info(self, section: str) -> dict[str, Any]:
        assert section == "server"
        return {} if self.version is None else {"redis_version": self.version, "redis_mode": "standalone"}


async def test_the_redis_the_tests_start_is_new_enough(redis: ArqRedis) -> None:
    assert await redis_version_problem(redis) is None


@pytest.mark.parametrize("version", ["5.0.7", "6.0.16"])
async def test_an_older_redis_is_named_with_the_version_it_needs(version: str) -> None:
    problem = await redis_version_problem(ServerInfo(version))  # type: ignore[arg-type]
    assert problem == f"Redis {version} is too old: workers need Redis 6.2 or newer"


@pytest.mark.parametrize("version", ["6.2.0", "7.0.15", "7.2.4", "10.0.0", "", "unknown", None])
async def test_a_new_enough_or_unnamed_version_passes(version: str | None) -> None:
    assert await redis_version_problem(ServerInfo(version)) is None  # type: ignore[arg-type]


async def test_a_user_the_acl_keeps_from_info_is_given_the_benefit_of_the_doubt(
    redis: ArqRedis, redis_url: str
) -> None:
    await redis.acl_setuser(
        "no-info", enabled=True, passwords=["+pw"], keys=["*"], categories=["+@all"], commands=["-info"]
    )
    limited = await open_pool(redis_url.replace("redis://", "redis://no-info:pw@", 1))
    try:
        with pytest.raises(NoPermissionError):
            await limited.info("server")
        assert await redis_version_problem(limited) is None
    finally:
        await limited.aclose()
        await redis.acl_deluser("no-info")
