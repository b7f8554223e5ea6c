"""Corpus statistics for the local lexical models, from enqueue to the workers.

``enqueue.py --corpus`` computes the corpus's :class:`~providers.lexicon.CollectionStats` once
(when a model of the run ranks locally), stores them as one compressed blob under
``rr:corpus:{digest}:stats`` with the batch's expiry, and writes the digest into each line's job.
A worker loads the blob on the first line that names it and keeps it (a few corpora at most);
a line whose statistics are gone from Redis fails with a ``configuration`` error instead of
being scored with other statistics.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from redis.asyncio import Redis

from jobs import keys
from jobs.corpus import Corpus
from providers.errors import ConfigurationError
from providers.lexicon import CollectionStats, StatsFormatError, collect, plain_text, tokenize

__all__ = ["KEEP_LUA", "MAX_CORPORA", "StatisticsCache", "corpus_statistics", "store_statistics"]

MAX_CORPORA = 4
"""Corpora whose statistics a worker keeps in memory at once."""

KEEP_LUA = """
local ttl = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
else
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and left < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return 1
"""
"""Keep stored statistics at least as long as the batch enqueueing now (never shorten them:
another batch of the same corpus may need them longer)."""


def corpus_statistics(corpus: Corpus) -> CollectionStats:
    """Every corpus document's terms, as the local models render and tokenize them."""
    tokens = (tokenize(plain_text(entry, None)) for entry in corpus.documents.values())
    return collect(tokens, corpus.digest)


async def store_statistics(redis: Redis, corpus: Corpus, ttl_ms: int) -> bool:
    """Make the corpus's statistics available to workers for ``ttl_ms`` (0: forever); computes
    them only when Redis does not hold them already.  True when they were computed."""
    key = keys.corpus_stats(corpus.digest)
    if await redis.register_script(KEEP_LUA)(keys=[key], args=[ttl_ms]):
        return False
    stats = await asyncio.to_thread(corpus_statistics, corpus)
    await redis.set(key, stats.to_bytes(), px=ttl_ms or None)
    return True


class StatisticsCache:
    """A worker's corpus statistics, by corpus digest; concurrent lines share one load."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._loaded: OrderedDict[str, asyncio.Task[CollectionStats]] = OrderedDict()

    async def get(self, digest: str) -> CollectionStats:
        task = self._loaded.get(digest)
        if task is None:
            task = asyncio.ensure_future(self._load(digest))
            self._loaded[digest] = task
            while len(self._loaded) > MAX_CORPORA:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(digest)
        try:
            return await asyncio.shield(task)
        except BaseException:
            if task.done() and self._loaded.get(digest) is task:
                del self._loaded[digest]  # a failed load is tried again by the next line
            raise

    async def _load(self, digest: str) -> CollectionStats:
        blob = await self.redis.get(keys.corpus_stats(digest))
        if blob is None:
            raise ConfigurationError(
                f"the statistics of corpus {digest} are not in Redis (expired with their batch?): "
                "run enqueue again with the same --corpus, then retry-failed"
            )
        try:
            stats = await asyncio.to_thread(CollectionStats.from_bytes, blob)
        except StatsFormatError as exc:
            raise ConfigurationError(
                f"corpus {digest}: {exc}; run enqueue again with the same --corpus"
            ) from exc
        if stats.digest != digest:
            raise ConfigurationError(
                f"the statistics stored for corpus {digest} describe corpus {stats.digest}"
            )
        return stats
