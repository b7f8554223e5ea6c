"""Redis commands of concurrent jobs sent in one round trip.

Lines claimed together start together: each asks Redis for its line state in the same
event-loop turn; lines sent together are answered together and write their records in the
same turn.  Sent one pipeline each, every line pays a round trip and a ``send`` system
call (which also wakes Redis: at 50 ms provider latency, when Redis is often idle, that is
the costliest part of a line's Redis work).  :class:`Coalescer` queues what the callers of one
turn ask for and sends it as one pipeline on the next turn; each caller gets its own replies.

Errors reach exactly the callers they belong to: a command's error reply goes to the caller
that queued the command (the others get their replies); an error that fails the whole round
trip (connection lost, after redis-py's own retries) goes to every caller in it, since none
of their commands has an answer.  A caller that stops waiting (cancelled) leaves the others
unharmed.  A read that several callers of one turn make alike (``key``: a batch's cancel flag
and run, read by each of its lines) is sent once and its reply given to each of them.
redis-py re-sends a whole round trip after a connection error (as it re-sends a
lone command), so a write belongs here only if running it twice does no harm (the record
script counts nothing twice: :mod:`jobs.records`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import DataError

__all__ = ["Coalescer", "Queue"]

Queue = Callable[[Pipeline], object]
"""Adds one caller's commands to the shared pipeline."""
_Caller = tuple[Queue, "asyncio.Future[list[Any]]"]
_Span = tuple["asyncio.Future[list[Any]]", int, int]


@dataclass
class _Round:
    callers: list[_Caller] = field(default_factory=list)
    shared: dict[Hashable, asyncio.Future[list[Any]]] = field(default_factory=dict)


class Coalescer:
    """Coalesces the pipelines of callers in one event-loop turn (module docstring); one per
    worker, shared by its jobs.  Callers on different clients are sent apart."""

    def __init__(self) -> None:
        self._open: dict[int, _Round] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, redis: Redis, queue: Queue, key: Hashable | None = None) -> list[Any]:
        """The replies to the commands ``queue`` adds, sent with those of the other callers of
        this turn; raises the first error among them (a ``RedisError``).  Callers of one turn
        that give the same ``key`` (for a read that is the same for each) share one sending of
        it and its replies."""
        future = self.submit(redis, queue, key)
        # a shared reply is awaited through a shield: one caller's cancel is not the others'
        return await (future if key is None else asyncio.shield(future))

    def submit(self, redis: Redis, queue: Queue, key: Hashable | None = None) -> asyncio.Future[list[Any]]:
        """:meth:`execute` without waiting: queues now (so a caller can queue several reads in
        one turn) and gives the future of the replies."""
        loop = asyncio.get_running_loop()
        found = self._open.get(id(redis))
        if found is None:
            found = self._open[id(redis)] = _Round()
            task = loop.create_task(self._turn(redis, found))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        if key is not None and key in found.shared:
            return found.shared[key]
        future: asyncio.Future[list[Any]] = loop.create_future()
        found.callers.append((queue, future))
        if key is not None:
            found.shared[key] = future
            # its callers may all have gone (failed or cancelled): an error nobody reads is no news
            future.add_done_callback(_seen)
        return future

    async def _turn(self, redis: Redis, found: _Round) -> None:
        # runs on the turn after the first caller's: every caller of that turn has queued
        del self._open[id(redis)]
        await _send(redis, found.callers)


async def _send(redis: Redis, callers: list[_Caller]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        spans = _queue_all(pipe, callers)
        if not spans:
            return
        replies = await _execute(pipe, spans)
    if isinstance(replies, DataError):  # an argument Redis cannot take, found as it was sent: whose?
        if len(spans) == 1:
            _fail(spans[0][0], replies)
        for caller in callers if len(spans) > 1 else ():
            await _send(redis, [caller])
        return
    if replies is None:
        return
    for future, start, end in spans:
        if not future.done():
            _answer(future, replies[start:end])


async def _execute(pipe: Pipeline, spans: list[_Span]) -> list[Any] | DataError | None:
    """The replies; None when the round trip failed (its callers are told)."""
    try:
        return await pipe.execute(raise_on_error=False)
    except DataError as exc:
        return exc
    except Exception as exc:  # no command in the round trip has an answer
        for future, _, _ in spans:
            _fail(future, exc)
        return None
    except BaseException:
        for future, _, _ in spans:
            future.cancel()
        raise


def _seen(future: asyncio.Future[list[Any]]) -> None:
    if not future.cancelled():
        future.exception()


def _fail(future: asyncio.Future[list[Any]], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


def _queue_all(pipe: Pipeline, callers: list[_Caller]) -> list[_Span]:
    """Each waiting caller's commands, and where its replies will be."""
    spans = []
    for queue, future in callers:
        if future.done():  # cancelled before its turn came
            continue
        start = len(pipe)
        try:
            queue(pipe)
        except Exception as exc:  # this caller's own fault (a bad argument): its alone
            del pipe.command_stack[start:]
            future.set_exception(exc)
            continue
        spans.append((future, start, len(pipe)))
    return spans


def _answer(future: asyncio.Future[list[Any]], mine: list[Any]) -> None:
    error = next((reply for reply in mine if isinstance(reply, Exception)), None)
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(mine)
