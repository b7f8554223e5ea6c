"""Reads of concurrent callers in one round trip (jobs/coalescer.py): each caller gets its own
replies or its own error, on a real Redis."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from arq import ArqRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from jobs.coalescer import Coalescer


class CountingPipelines:
    """The client's ``pipeline``, counting the pipelines made (one per round trip here)."""

    def __init__(self, redis: Redis) -> None:
        self.made = 0
        self._pipeline = redis.pipeline

    def __call__(self, *args: Any, **kwargs: Any) -> Pipeline:
        self.made += 1
        return self._pipeline(*args, **kwargs)


def hget(key: str, field: str) -> Any:
    return lambda pipe: pipe.hget(key, field)


@pytest.fixture
def counted(redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> CountingPipelines:
    counter = CountingPipelines(redis)
    monkeypatch.setattr(redis, "pipeline", counter)
    return counter


async def test_callers_of_one_turn_share_one_round_trip_and_get_their_own_replies(
    redis: ArqRedis, counted: CountingPipelines
) -> None:
    for n in range(5):
        await redis.hset(f"h{n}", mapping={"a": f"a{n}", "b": f"b{n}"})  # type: ignore[misc]
    reads = Coalescer()

    def two(n: int) -> Any:
        return lambda pipe: (pipe.hget(f"h{n}", "a"), pipe.hmget(f"h{n}", ["b", "missing"]))

    found = await asyncio.gather(*(reads.execute(redis, two(n)) for n in range(5)))
    assert found == [[f"a{n}".encode(), [f"b{n}".encode(), None]] for n in range(5)]
    assert counted.made == 1


async def test_callers_of_later_turns_go_in_later_round_trips(
    redis: ArqRedis, counted: CountingPipelines
) -> None:
    await redis.hset("h", "a", "1")  # type: ignore[misc]
    reads = Coalescer()
    assert await reads.execute(redis, hget("h", "a")) == [b"1"]
    assert await reads.execute(redis, hget("h", "b")) == [None]
    assert counted.made == 2


async def test_an_error_reply_reaches_only_the_caller_whose_command_failed(redis: ArqRedis) -> None:
    await redis.set("plain", "not a hash")
    await redis.hset("h", "a", "1")  # type: ignore[misc]
    reads = Coalescer()

    def wrong_then_right(pipe: Pipeline) -> None:
        pipe.hget("h", "a")
        pipe.hget("plain", "a")  # WRONGTYPE

    found = await asyncio.gather(
        reads.execute(redis, hget("h", "a")),
        reads.execute(redis, wrong_then_right),
        reads.execute(redis, hget("h", "missing")),
        return_exceptions=True,
    )
    assert found[0] == [b"1"]
    assert isinstance(found[1], ResponseError) and "WRONGTYPE" in str(found[1])
    assert found[2] == [None]


async def test_a_caller_whose_commands_cannot_be_queued_fails_alone(redis: ArqRedis) -> None:
    await redis.hset("h", "a", "1")  # type: ignore[misc]
    reads = Coalescer()

    def bad(pipe: Pipeline) -> None:
        pipe.hget("h", "a")
        pipe.hget("h", {"not": "a field"})  # type: ignore[arg-type]  # redis-py refuses a dict

    found = await asyncio.gather(
        reads.execute(redis, bad), reads.execute(redis, hget("h", "a")), return_exceptions=True
    )
    assert isinstance(found[0], Exception) and not isinstance(found[0], ResponseError)
    assert found[1] == [b"1"]


async def test_a_lost_round_trip_fails_every_caller_in_it_and_the_next_turn_recovers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    dead = Redis(port=port, socket_connect_timeout=0.2)
    reads = Coalescer()
    try:
        found = await asyncio.gather(
            *(reads.execute(dead, hget("h", str(n))) for n in range(3)), return_exceptions=True
        )
        assert all(isinstance(error, RedisConnectionError) for error in found), found
        with pytest.raises(RedisConnectionError):
            await reads.execute(dead, hget("h", "again"))
    finally:
        await dead.aclose()


async def test_a_cancelled_caller_leaves_the_others_their_replies(redis: ArqRedis) -> None:
    await redis.hset("h", mapping={"a": "1", "b": "2"})  # type: ignore[misc]
    reads = Coalescer()
    first = asyncio.ensure_future(reads.execute(redis, hget("h", "a")))
    second = asyncio.ensure_future(reads.execute(redis, hget("h", "b")))
    await asyncio.sleep(0)  # both have queued
    first.cancel()
    assert await second == [b"2"]
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_callers_on_different_clients_are_sent_apart(redis: ArqRedis, redis_url: str) -> None:
    other = Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    try:
        await redis.set("k", "db0")
        await other.set("k", "db1")
        reads = Coalescer()
        found = await asyncio.gather(
            reads.execute(redis, lambda pipe: pipe.get("k")), reads.execute(other, lambda pipe: pipe.get("k"))
        )
        assert list(found) == [[b"db0"], [b"db1"]]
    finally:
        await other.flushdb()
        await other.aclose()


class CountedHmget:
    """A queue function for ``HMGET h a``, counting how often it is put in a pipeline."""

    def __init__(self) -> None:
        self.queued = 0

    def __call__(self, pipe: Pipeline) -> None:
        self.queued += 1
        pipe.hmget("h", ["a"])


async def test_a_read_shared_by_key_is_sent_once_a_turn_and_each_caller_gets_its_reply(
    redis: ArqRedis, counted: CountingPipelines
) -> None:
    await redis.hset("h", "a", "1")  # type: ignore[misc]
    reads = Coalescer()
    flags = CountedHmget()
    found = await asyncio.gather(*(reads.execute(redis, flags, key="h") for _ in range(4)))
    assert found == [[[b"1"]]] * 4
    assert flags.queued == 1 and counted.made == 1
    await redis.hset("h", "a", "2")  # type: ignore[misc]
    assert await reads.execute(redis, flags, key="h") == [[b"2"]]  # a later turn reads again
    assert flags.queued == 2


async def test_a_cancelled_caller_of_a_shared_read_leaves_the_others_their_reply(redis: ArqRedis) -> None:
    await redis.hset("h", "a", "1")  # type: ignore[misc]
    reads = Coalescer()
    flags = CountedHmget()
    first = asyncio.ensure_future(reads.execute(redis, flags, key="h"))
    second = asyncio.ensure_future(reads.execute(redis, flags, key="h"))
    await asyncio.sleep(0)  # both have joined the read
    first.cancel()
    assert await second == [[b"1"]]
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_shared_read_reaches_each_caller(redis: ArqRedis) -> None:
    await redis.set("h", "not a hash")
    reads = Coalescer()
    found = await asyncio.gather(
        *(reads.execute(redis, CountedHmget(), key="h") for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(error, ResponseError) and "WRONGTYPE" in str(error) for error in found), found
