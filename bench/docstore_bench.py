"""Redis bytes per queued line with and without the document store, on a realistic shape: BM25
top-K candidates (bm25s) for synthetic queries over one synthetic corpus (Zipf-distributed words,
passages of 40-120 words), so queries share candidates as a real first stage makes them.

    python bench/docstore_bench.py [--queries 2000] [--corpus 10000] [--candidates 100]

A third run with short passages (6-30 words: titles, snippets) is where the threshold matters.
Prints the overlap (document slots per unique document), then for each store threshold (0: every
document stored; the default; none: everything inline, as before the store) the Redis memory the
enqueue added (``INFO memory`` used_memory delta) per line, and the ratio to inline.  The same
for a run without overlap (every candidate unique) shows what the store costs when nothing is
shared, which is what the threshold trades against.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from jobs.connection import open_pool
from jobs.dataset import DatasetLine
from jobs.docstore import STORE_MIN_BYTES
from jobs.embedded import EmbeddedRedis
from jobs.queue import enqueue_lines
from jobs.settings import RunnerSettings

INLINE = 1 << 40
"""A threshold no document reaches: everything inline."""


def vocabulary(size: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(size)]


def zipf_words(words: list[str], count: int, rng: np.random.Generator) -> list[str]:
    ranks = rng.zipf(1.2, size=count)
    return [words[(r - 1) % len(words)] for r in ranks]


def corpus_and_queries(
    corpus: int, queries: int, seed: int, length: tuple[int, int] = (40, 120)
) -> tuple[list[str], list[str]]:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    words = vocabulary(20_000, rng)
    passages = [" ".join(zipf_words(words, rng.randint(*length), nrng)) for _ in range(corpus)]
    asked = [" ".join(zipf_words(words[50:], rng.randint(2, 5), nrng)) for _ in range(queries)]
    return passages, asked


def bm25_lines(passages: list[str], asked: list[str], depth: int) -> list[DatasetLine]:
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(passages, show_progress=False), show_progress=False)
    found, _ = retriever.retrieve(bm25s.tokenize(asked, show_progress=False), k=depth, show_progress=False)
    return [
        DatasetLine(line_no=n + 1, id=f"q{n}", query=query, documents=[passages[int(i)] for i in found[n]])
        for n, query in enumerate(asked)
    ]


def unique_lines(passages: list[str], asked: list[str], depth: int) -> list[DatasetLine]:
    """The same sizes without overlap: every candidate slot its own passage."""
    rng = random.Random(3)
    return [
        DatasetLine(
            line_no=n + 1,
            id=f"q{n}",
            query=query,
            documents=[f"{n}.{k} {rng.choice(passages)}" for k in range(depth)],
        )
        for n, query in enumerate(asked)
    ]


async def key_bytes(pool: Any) -> int:
    """``MEMORY USAGE`` summed over every key (exact per key; no client buffers, no scripts)."""
    total = 0
    batch: list[bytes] = []
    async for key in pool.scan_iter(count=5000):
        batch.append(key)
        if len(batch) == 5000:
            total += await usage(pool, batch)
            batch = []
    return total + (await usage(pool, batch) if batch else 0)


async def usage(pool: Any, batch: list[bytes]) -> int:
    async with pool.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.memory_usage(key, samples=0)
        return sum(int(found or 0) for found in await pipe.execute())


async def bytes_per_line(url: str, lines: list[DatasetLine], threshold: int) -> tuple[float, float]:
    """(MEMORY USAGE of every key, INFO used_memory delta) per line."""
    settings = RunnerSettings(redis_url=url)
    pool = await open_pool(url)
    try:
        await pool.flushall()
        before = int((await pool.info("memory"))["used_memory"])
        await enqueue_lines(
            pool, "bench", lines, default_model="local/bm25", run="r",
            job_expiry_ms=settings.job_expiry_ms, result_ttl_ms=settings.result_ttl_ms,
            store_min_bytes=threshold,
        )  # fmt: skip
        keys_total = await key_bytes(pool)
    finally:
        await pool.aclose()
    pool = await open_pool(url)  # a fresh connection: enqueue's query buffers are gone
    try:
        after = int((await pool.info("memory"))["used_memory"])
        await pool.flushall()
    finally:
        await pool.aclose()
    return keys_total / len(lines), (after - before) / len(lines)


def describe(lines: list[DatasetLine]) -> str:
    slots = [d for line in lines for d in line.documents]
    unique = {str(d) for d in slots}
    sizes = [len(str(d).encode()) for d in unique]
    per_doc = len(slots) / len(unique)
    return (
        f"{len(lines)} lines x {len(lines[0].documents)} candidates: {len(slots):,} slots, "
        f"{len(unique):,} unique documents (each in {per_doc:.1f} lines on average), "
        f"median document {statistics.median(sizes):.0f} B"
    )


async def measure(url: str, label: str, lines: list[DatasetLine]) -> None:
    print(f"\n{label}: {describe(lines)}")
    print(f"  {'':<38} {'MEMORY USAGE':>14} {'ratio':>7} {'INFO delta':>12} {'ratio':>7}  (bytes per line)")
    inline, inline_info = await bytes_per_line(url, lines, INLINE)
    print(f"  {'inline (no store)':<38} {inline:>14,.0f} {1:>7.3f} {inline_info:>12,.0f} {1:>7.3f}")
    for threshold in sorted({0, 64, STORE_MIN_BYTES, 192, 256, 512, 1024}):
        found, info = await bytes_per_line(url, lines, threshold)
        name = f"store, documents >= {threshold} B" + (" (default)" if threshold == STORE_MIN_BYTES else "")
        ratios = f"{found / inline:>7.3f} {info:>12,.0f} {info / inline_info:>7.3f}"
        print(f"  {name:<38} {found:>14,.0f} {ratios}")


async def main_async(args: argparse.Namespace) -> None:
    passages, asked = corpus_and_queries(args.corpus, args.queries, seed=7)
    with tempfile.TemporaryDirectory(prefix="docstore-bench-") as work:
        server = EmbeddedRedis(Path(work), persist=False)
        try:
            server.start()
            await measure(server.url, "BM25 top candidates", bm25_lines(passages, asked, args.candidates))
            await measure(server.url, "no overlap", unique_lines(passages, asked, args.candidates))
            short, asked = corpus_and_queries(args.corpus, args.queries, seed=8, length=(6, 30))
            await measure(server.url, "BM25, short passages", bm25_lines(short, asked, args.candidates))
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--corpus", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=100)
    args: Any = parser.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
