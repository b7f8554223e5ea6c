"""Redis commands packed by hiredis, in C, on the asyncio connections too.

redis-py packs a command with hiredis on its synchronous connections when hiredis is installed,
but on its asyncio connections always in Python, one argument at a time: 12 µs for a record
write's ``EVALSHA``, 24 µs for a 20-key ``MGET``, against 2-3 µs with hiredis, for the same
bytes.  That was 9.5% of a worker's CPU samples at 50 ms (py-spy, ``pack_command`` under the
line-state and record pipelines).  The pools this project opens make their connections of the
subclasses below, which pack with redis-py's own hiredis packer.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.typing import EncodableT
from redis.utils import HIREDIS_AVAILABLE

__all__ = [
    "HiredisConnection",
    "HiredisSSLConnection",
    "HiredisUnixConnection",
    "pack_with_hiredis",
]


class _PackedByHiredis:
    _packer: Any = HiredisRespSerializer() if HIREDIS_AVAILABLE else None

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        packed: list[bytes] = self._packer.pack(*args)
        return packed


class HiredisConnection(_PackedByHiredis, Connection):
    pass


class HiredisSSLConnection(_PackedByHiredis, SSLConnection):
    pass


class HiredisUnixConnection(_PackedByHiredis, UnixDomainSocketConnection):
    pass


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


async def pack_with_hiredis(redis: Redis) -> None:
    """From now on the pool's connections pack commands with hiredis; the ones it holds already
    (the first ``PING``'s) are closed and let go, and the next command opens a new one.  A pool
    of another kind of connection (Sentinel's), or no hiredis, leaves the pool as it is."""
    pool = redis.connection_pool
    packed = _PACKED.get(pool.connection_class)
    if packed is None or not HIREDIS_AVAILABLE:
        return
    pool.connection_class = packed
    await pool.disconnect()
    pool.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
