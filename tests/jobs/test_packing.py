"""Commands packed by hiredis on the asyncio connections: the same bytes as redis-py's Python
packing, refused for the same inputs, and the pools this project opens use it from the first
command."""

from __future__ import annotations

from typing import Any

import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool, UnixDomainSocketConnection
from redis.exceptions import DataError
from redis.typing import EncodableT

from jobs.packing import HiredisConnection, HiredisUnixConnection, pack_with_hiredis

COMMANDS: list[tuple[EncodableT, ...]] = [
    ("SET", "k", "v"),
    ("SET", b"k", b"\x00\xff\r\n"),
    ("ZADD", "q", 1.5, "member"),
    ("ZADD", "q", float("inf"), "m"),
    ("INCRBY", "n", -(2**63)),
    ("CLIENT SETNAME", "spaced command name"),
    ("SET", "é", "日本語"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 0.1, 1e20, b'{"results": []}'),
    ("SET", "k", memoryview(b"a view")),
    ("MGET", *[f"rr:cache:{n:032x}" for n in range(20)]),
    ("SET", "large", b"x" * 100_000),
]


def joined(pieces: list[Any]) -> bytes:
    return b"".join(bytes(piece) for piece in pieces)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: str(args[0]))
def test_hiredis_packs_the_bytes_redis_py_packs(args: tuple[EncodableT, ...]) -> None:
    assert joined(HiredisConnection().pack_command(*args)) == joined(Connection().pack_command(*args))


@pytest.mark.parametrize("value", [True, None, object()])
def test_what_redis_py_refuses_hiredis_refuses(value: Any) -> None:
    for connection in (Connection(), HiredisConnection()):
        with pytest.raises(DataError):
            connection.pack_command("SET", "k", value)


async def test_the_pools_opened_here_pack_with_hiredis_from_the_first_command(redis: ArqRedis) -> None:
    """open_pool's first PING made a connection of redis-py's own class: it is let go."""
    assert redis.connection_pool.connection_class is HiredisConnection
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set("a", "é")
        pipe.get("a")
        pipe.zadd("z", {"m": 1.5})
        pipe.zscore("z", "m")
        pipe.delete("a", "z")
        assert await pipe.execute() == [True, "é".encode(), 1, 1.5, 2]
    used = redis.connection_pool._available_connections  # what the pipeline gave back
    assert used and all(type(connection) is HiredisConnection for connection in used)


async def test_a_unix_socket_pool_packs_with_hiredis_and_another_kind_is_left_alone() -> None:
    unix = Redis(unix_socket_path="/nonexistent/redis.sock")
    await pack_with_hiredis(unix)
    assert unix.connection_pool.connection_class is HiredisUnixConnection
    assert issubclass(HiredisUnixConnection, UnixDomainSocketConnection)

    class Managed(Connection):
        pass

    other = Redis(connection_pool=ConnectionPool(connection_class=Managed))
    await pack_with_hiredis(other)
    assert other.connection_pool.connection_class is Managed
    await unix.aclose()
    await other.aclose()
