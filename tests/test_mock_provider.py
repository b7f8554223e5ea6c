"""bench/mock_provider.py: the benchmarks' Cohere-wire provider answers like an HTTP/1.1 server
(requests split across reads, several in one read, answers in order behind the latency) and its
``position`` scores are a real ranking of the documents sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from bench.mock_provider import MockConfig, MockProvider

KEY = "mock-key"


@pytest.fixture
async def mock(request: pytest.FixtureRequest) -> AsyncIterator[MockProvider]:
    config: MockConfig = getattr(request, "param", MockConfig(latency_ms=20))
    provider = await MockProvider(config).start()
    yield provider
    await provider.close()


def rerank(documents: int, *, top_n: int | None = None, close: bool = False) -> bytes:
    body = {"model": "rerank-v3.5", "query": "solar wind", "documents": ["solar wind"] * documents}
    data = orjson.dumps({**body, "top_n": top_n} if top_n else body)
    head = f"POST /v2/rerank HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\n"
    head += f"content-length: {len(data)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    return head.encode() + data


async def answers(
    reader: asyncio.StreamReader, count: int
) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    out = []
    for _ in range(count):
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().strip().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        body = orjson.loads(await reader.readexactly(int(headers["content-length"])))
        out.append((int(status_line.split()[1]), headers, body))
    return out


async def test_requests_split_across_reads_and_pipelined_are_answered_in_order(mock: MockProvider) -> None:
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    first = rerank(3)
    writer.write(first[:40])  # the head arrives in pieces, then the rest with two more requests
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(first[40:] + rerank(1) + rerank(2))
    got = await answers(reader, 3)
    assert [(status, len(body["results"])) for status, _, body in got] == [(200, 3), (200, 1), (200, 2)]
    assert all(headers["connection"] == "keep-alive" for _, headers, _ in got)
    assert mock.counters.requests == mock.counters.ok_2xx == 3
    writer.close()


async def test_connection_close_is_honoured_and_errors_keep_their_status(mock: MockProvider) -> None:
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    writer.write(rerank(2).replace(KEY.encode(), b"wrong-key") + rerank(1, close=True) + rerank(1))
    got = await answers(reader, 2)
    assert [status for status, _, _ in got] == [401, 200]
    assert got[1][1]["connection"] == "close"
    assert await reader.read() == b""  # closed: the third request is never answered
    assert mock.counters.requests == 2
    writer.close()


@pytest.mark.parametrize("mock", [MockConfig(scores="position")], indirect=True)
async def test_position_scores_rank_every_document_and_respect_top_n(mock: MockProvider) -> None:
    reader, writer = await asyncio.open_connection(mock.host, mock.port)
    writer.write(rerank(4) + rerank(4, top_n=2))
    (_, _, every), (_, _, top) = await answers(reader, 2)
    assert every["results"] == [{"index": i, "relevance_score": 1 / (i + 1)} for i in range(4)]
    assert top["results"] == every["results"][:2]
    assert every["id"] != top["id"]
    writer.close()
