"""Commands written in Redis's wire format (RESP) by hand, and a MULTI/EXEC of them on one
pooled connection.

The enqueue sends each chunk of lines as two commands of about a thousand arguments each.
redis-py encodes a command one argument at a time through several Python calls; that cost as
much CPU as Redis spent running the chunk (docs/performance.md, "levers").  Here an argument
costs one formatting operation, and the pieces go to the socket as they are, never joined.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

__all__ = ["Command", "transaction"]


class Command:
    """One command's pieces, argument by argument (``str`` as UTF-8, ``int`` in decimal)."""

    def __init__(self, *args: bytes | str | int) -> None:
        self.count = 0
        self.parts: list[bytes] = []
        for arg in args:
            self.add(arg)

    def add(self, arg: bytes | str | int) -> None:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        self.parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
        self.count += 1

    def add_encoded(self, count: int, *pieces: bytes) -> None:
        """``count`` arguments the caller wrote in RESP already (``$<length>\\r\\n<bytes>\\r\\n``
        each), as ``pieces``: a large argument can be a piece of its own, handed on as it is,
        never copied.  One formatting operation for several small arguments is what makes an
        enqueue chunk cheap to build."""
        self.parts += pieces
        self.count += count

    def pieces(self) -> list[bytes]:
        return [b"*%d\r\n" % self.count, *self.parts]


async def transaction(redis: Redis, *commands: Command) -> list[Any]:
    """Run the commands in one MULTI/EXEC, all or nothing, and return their replies; raises
    :class:`redis.exceptions.ResponseError` for a command Redis refused or one that failed."""
    pieces = [*Command("MULTI").pieces()]
    for command in commands:
        pieces += command.pieces()
    pieces += Command("EXEC").pieces()
    pool = redis.connection_pool
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(pieces, check_health=False)
        refused: ResponseError | None = None
        for _ in range(len(commands) + 1):  # MULTI's OK, then QUEUED or an error per command
            try:
                await connection.read_response(disconnect_on_error=False)
            except ResponseError as exc:
                refused = refused or exc
        try:
            replies = await connection.read_response(disconnect_on_error=False)
        except ResponseError as exc:  # EXECABORT: nothing ran
            raise refused or exc from None
    except BaseException:
        await connection.disconnect()  # replies may be left unread: never reused
        raise
    finally:
        await pool.release(connection)
    failed = [reply for reply in replies if isinstance(reply, ResponseError)]
    if failed:
        raise failed[0]
    return list(replies)
