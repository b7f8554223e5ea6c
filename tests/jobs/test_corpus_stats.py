"""Corpus statistics from enqueue to the workers: stored once per corpus with the longest
batch expiry, loaded once per worker, and never replaced by other statistics when missing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from arq import ArqRedis

from jobs import keys
from jobs.corpus import Corpus, load_corpus
from jobs.corpus_stats import MAX_CORPORA, StatisticsCache, corpus_statistics, store_statistics
from providers.errors import ConfigurationError
from providers.lexicon import CollectionStats


def small_corpus(tmp_path: Path, extra: str = "") -> Corpus:
    path = tmp_path / f"corpus{extra}.jsonl"
    path.write_text(
        '{"_id": "d1", "title": "Solar Panels", "text": "Panels turn light into power."}\n'
        f'{{"_id": "d2", "text": "Espresso is brewed under pressure. {extra}"}}\n'
    )
    return load_corpus(path)


def test_statistics_count_titles_and_texts_as_the_local_models_see_them(tmp_path: Path) -> None:
    stats = corpus_statistics(small_corpus(tmp_path))
    assert (stats.documents, stats.df["panel"], stats.cf["panel"]) == (2, 1, 2)
    assert "title" not in stats.df and "the" not in stats.df  # field names and stopwords are no terms


async def test_stored_once_and_never_expiring_sooner_than_a_batch_needs(
    redis: ArqRedis, tmp_path: Path
) -> None:
    corpus = small_corpus(tmp_path)
    key = keys.corpus_stats(corpus.digest)
    assert await store_statistics(redis, corpus, 60_000) is True
    assert await store_statistics(redis, corpus, 10_000) is False  # kept, not recomputed
    assert 50_000 < await redis.pttl(key) <= 60_000  # a shorter batch does not shorten it
    assert await store_statistics(redis, corpus, 120_000) is False
    assert await redis.pttl(key) > 60_000
    assert await store_statistics(redis, corpus, 0) is False
    assert await redis.pttl(key) == -1  # a batch kept forever keeps them forever
    assert CollectionStats.from_bytes(await redis.get(key)) == corpus_statistics(corpus)


async def test_a_worker_loads_each_corpus_once_and_reports_a_missing_one(
    redis: ArqRedis, tmp_path: Path
) -> None:
    corpus = small_corpus(tmp_path)
    await store_statistics(redis, corpus, 0)
    cache = StatisticsCache(redis)
    loaded = await asyncio.gather(*(cache.get(corpus.digest) for _ in range(5)))
    assert all(stats is loaded[0] for stats in loaded)
    await redis.delete(keys.corpus_stats(corpus.digest))
    assert await cache.get(corpus.digest) is loaded[0]  # kept in memory
    with pytest.raises(ConfigurationError, match="run enqueue again with the same --corpus"):
        await cache.get("0" * 32)
    await redis.set(keys.corpus_stats("f" * 32), b"garbage")
    with pytest.raises(ConfigurationError, match=r"corpus f+: unreadable"):
        await cache.get("f" * 32)
    others = [small_corpus(tmp_path, str(n)) for n in range(MAX_CORPORA)]
    for other in others:
        await store_statistics(redis, other, 0)
        await cache.get(other.digest)
    with pytest.raises(ConfigurationError):  # the oldest was dropped; its blob is gone
        await cache.get(corpus.digest)
