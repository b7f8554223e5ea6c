"""Documents stored once: a document's text is kept in Redis once per content, not once per line
that holds it (a top-100 run over a shared corpus repeats most documents many times).

Enqueue replaces each document whose JSON is at least :data:`STORE_MIN_BYTES`, from its second
use in the run on, by a hash of that JSON in the job payload (``stored`` lists the positions so
replaced) and writes ``rr:doc:{hash}`` -> the JSON, set if absent, in the same pipeline as the
jobs and before them.  A document's first use stays inline: a run where nothing recurs stores
nothing and costs what it did without the store; when fewer than 1% of the run's first 100,000
documents recur, the store is off for the rest of the run (:data:`SAMPLE_REPEATS`; validation
takes that sample when the lines hold their documents, and the store is then off from the
first line: :class:`DocumentSample`).  Smaller
documents stay inline too: a stored document costs its key and Redis's per-key overhead (about
125 bytes, and 27 for each reference), which a short text used two or three times does not
repay.

Lifetime is batch-scoped: every write, of a document already there too, pushes its expiry out
(never in) to the writing batch's lifetime (``RR_RESULT_TTL_DAYS``, or the job expiry if that is
longer; ``RR_RESULT_TTL_DAYS=0`` makes it persistent), so a document lives as long as the
longest-lived batch that uses it and nothing outlives them all.  Running enqueue again for a
batch writes its documents again.

The worker reads a line's stored documents in the same round trip as its batch check and puts
them back (:func:`hydrate`) before anything else sees the line, so providers, the score cache,
records, ``return_documents`` and the dead-letter store see the line as written.  A document no
longer there, or not the content its hash names, fails the line (``document_missing``): it is
never ranked without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from jobs import keys
from jobs.payload import LinePayload
from providers.errors import DocumentMissingError

__all__ = [
    "HASH_BYTES",
    "MET_SLOTS",
    "REMEMBERED",
    "SAMPLE_DOCUMENTS",
    "SAMPLE_REPEATS",
    "STORE_MIN_BYTES",
    "WRITE_LUA",
    "DocumentSample",
    "DocumentWriter",
    "content_hash",
    "document_keys",
    "hydrate",
]

STORE_MIN_BYTES = 128
"""Documents whose JSON is shorter stay inline in the job.  A stored document costs about 125
bytes of Redis overhead once plus a 27-byte reference per later use, and its first use stays
inline (bench/docstore_bench.py): a 128-byte document pays off from its fourth use, a 180-byte
one from its third; shorter texts rarely repay the key."""
HASH_BYTES = 12
REMEMBERED = 1 << 18
"""Hashes one enqueue remembers as written (then it starts over: a document is written again,
harmlessly), so its memory stays bounded (about 25 MB)."""
SAMPLE_DOCUMENTS = 100_000
SAMPLE_REPEATS = 0.01
"""When fewer than 1% of a run's first 100,000 documents recur, the store is off for the rest of
the run: every document stays inline, and enqueue spares each line the hashing.  A first stage's
candidate lists recur far more (BM25 top-100 for 2,000 queries over 10,000 passages: 95% of
the slots; even uniform draws of a million from 8.8 million passages: 5%)."""
MET_SLOTS = 1 << 25
"""One flag per slot of a document's hash: met before in this run.  32 MB however long the run;
a new document whose slot is taken (about 1 in 7 after 5 million distinct documents) is stored
from its first use, which costs a key, never a wrong score."""


WRITE_LUA = """
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  local key = KEYS[i]
  if ttl == 0 then
    if not redis.call('SET', key, ARGV[i + 1], 'NX') then
      redis.call('PERSIST', key)
    end
  elseif not redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ttl) then
    local left = redis.call('PTTL', key)
    if left >= 0 and left < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
return #KEYS
"""
"""Set if absent, else push the expiry out, never in (Redis 6.2 has no ``PEXPIRE ... GT``); a
persistent document stays persistent."""


def content_hash(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=HASH_BYTES).hexdigest()


def _hashes(documents: list[Any]) -> list[int]:
    """One hash per document, for telling documents met before in this run apart."""
    try:  # a string caches its hash; far cheaper than its JSON
        return list(map(hash, documents))
    except TypeError:  # object documents: hashed by their JSON
        return [hash(d) if isinstance(d, str) else hash(orjson.dumps(d)) for d in documents]


class DocumentSample:
    """The sample :class:`DocumentWriter` takes, taken by validation instead, which decodes every
    line anyway (fed each valid line, in file order): when the run's first documents do not
    recur, the enqueue pass starts with the store off, and no line of the sample is decoded and
    rebuilt again for the store's sake.  Exact where the writer's flags are not (one hash per
    document, held until the sample is full: about 4 MB), and a document repeated within a line
    counts too, so it finds the store worth its hashing at least as often as the writer would."""

    def __init__(self, sample: int = SAMPLE_DOCUMENTS) -> None:
        self.sample = sample
        self.checked = 0
        self.repeats = 0
        self._seen: set[int] = set()

    def add(self, line_no: int, raw: bytes, obj: Mapping[str, Any]) -> None:
        if self.checked >= self.sample:
            return
        documents: list[Any] = obj["documents"]
        before = len(self._seen)
        self._seen.update(_hashes(documents))
        self.repeats += len(documents) - (len(self._seen) - before)
        self.checked += len(documents)
        if self.checked >= self.sample:
            self._seen = set()

    @property
    def recurring(self) -> bool:
        """Whether the store is worth its hashing; a sample not yet full (a short run) says so."""
        return self.checked < self.sample or self.repeats >= self.checked * SAMPLE_REPEATS


class DocumentWriter:
    """Enqueue's side: takes documents out of payloads and writes them, once per run."""

    def __init__(
        self,
        redis: Redis,
        ttl_ms: int,
        min_bytes: int = STORE_MIN_BYTES,
        sample: int = SAMPLE_DOCUMENTS,
        recurring: bool = True,
    ) -> None:
        self._script = redis.register_script(WRITE_LUA)
        self.ttl_ms = ttl_ms
        self.min_bytes = min_bytes
        self.sample = sample
        self._checked = 0
        self._repeats = 0
        self.active = recurring
        """False once the sample found (almost) nothing recurring: every document stays inline
        (from the start when validation's :class:`DocumentSample` found so: ``recurring``)."""
        self._written: set[str] = set()
        self._met_slots = np.zeros(MET_SLOTS, dtype=np.bool_)  # pages are touched as used

    def stash(self, payload: LinePayload, pending: dict[str, bytes]) -> int:
        """Replace the payload's large documents met before in this run by their hashes; those
        not yet written go into ``pending`` (hash -> JSON).  Returns the bytes added to it."""
        documents: list[Any] = payload["documents"]
        if not self.active:
            return 0
        repeated = self._met(documents)
        if self._checked < self.sample:
            self._checked += len(documents)
            self._repeats += len(repeated)
            if self._checked >= self.sample and self._repeats < self._checked * SAMPLE_REPEATS:
                self.active = False  # nothing to share: spare every later line the hashing
        if not repeated:
            return 0
        refs: list[Any] = list(documents)
        stored: list[int] = []
        added = 0
        for position in repeated:
            document = documents[position]
            if isinstance(document, str) and len(document) * 6 + 2 < self.min_bytes:
                continue  # short whatever its characters (JSON escapes one in at most 6 bytes)
            raw = orjson.dumps(document)
            if len(raw) < self.min_bytes:
                continue
            digest = content_hash(raw)
            refs[position] = digest
            stored.append(position)
            if digest not in self._written and digest not in pending:
                pending[digest] = raw
                added += len(raw)
        if stored:
            payload["documents"] = refs
            payload["stored"] = stored
        return added

    def _met(self, documents: list[Any]) -> list[int]:
        """Positions of the documents met before in this run (a document used once is cheaper
        inline: it stays there), from one flag per hash slot, set at C speed for the line."""
        hashes = np.fromiter(_hashes(documents), dtype=np.int64, count=len(documents))
        np.bitwise_and(hashes, MET_SLOTS - 1, out=hashes)  # in place: the slots
        met = self._met_slots.take(hashes)  # take and put: twice as fast as fancy indexing
        self._met_slots.put(hashes, True)
        return np.flatnonzero(met).tolist() if met.any() else []

    async def queue_writes(self, pipe: Pipeline, pending: dict[str, bytes]) -> None:
        """Set each document if absent and push its expiry out to this batch's lifetime (queued
        on ``pipe``, sent with it)."""
        if pending:
            written = [keys.document(digest) for digest in pending]
            await self._script(keys=written, args=[self.ttl_ms, *pending.values()], client=pipe)

    def written(self, digests: Iterable[str]) -> None:
        """The documents of a chunk Redis has run: later lines need not write them again."""
        if len(self._written) >= REMEMBERED:
            self._written.clear()
        self._written.update(digests)


def document_keys(line: LinePayload) -> list[str]:
    """The store keys of the line's stored documents, in ``stored`` order."""
    documents = line["documents"]
    return [keys.document(str(documents[position])) for position in line.get("stored", ())]


def hydrate(line: LinePayload, values: Sequence[bytes | None]) -> LinePayload:
    """The line with its stored documents put back, given their values (MGET of
    :func:`document_keys`); raises :class:`DocumentMissingError` naming the missing positions."""
    positions = line.get("stored")
    if not positions:
        return line
    documents: list[Any] = list(line["documents"])
    missing = []
    for position, value in zip(positions, values, strict=True):
        if value is None or content_hash(value) != documents[position]:
            missing.append(position)
        else:
            documents[position] = orjson.loads(value)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise DocumentMissingError(
            f"documents [{shown}] ({len(missing)} of {len(documents)}) are no longer in Redis "
            "(expired after RR_RESULT_TTL_DAYS, or evicted under maxmemory); run the same enqueue "
            "command again to store them, then batch.py retry-failed",
            positions=missing,
        )
    hydrated: LinePayload = {**line, "documents": documents}
    del hydrated["stored"]
    return hydrated
