"""The document store against a real Redis: enqueue keeps each large document once, jobs carry its
hash, the worker's read puts the line back exactly as written, expiry only ever moves out, and a
missing or altered document is a named failure, never a ranking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from arq import ArqRedis

from jobs import keys
from jobs.dataset import DatasetLine
from jobs.docstore import (
    STORE_MIN_BYTES,
    DocumentSample,
    DocumentWriter,
    content_hash,
    document_keys,
    hydrate,
)
from jobs.payload import LinePayload, line_payload
from jobs.queue import document_ttl_ms, enqueue_lines, register_batch
from jobs.records import RecordWriter
from jobs.serializer import deserialize
from jobs.validation import ModelCheck, validate_file
from jobs.verbatim import LineIndex
from jobs.work import WorkerState, rerank_line
from providers.errors import DocumentMissingError, InvalidRequestError
from providers.types import RerankRequest, RerankResponse
from tests.support import RUN, WORDS, synthetic_lines, unit_line, write_dataset

LONG = " ".join(WORDS) * 2  # 300+ bytes: stored
HOUR_MS = 3_600_000


def passage(n: int) -> str:
    return f"passage {n}: {LONG}"


def overlapping_lines(count: int) -> list[DatasetLine]:
    """Each line holds 6 of 10 shared long passages, an object document and a short text."""
    made = []
    for n in range(count):
        documents: list[Any] = [passage((n + k) % 10) for k in range(6)]
        documents.append({"id": f"o{n % 3}", "title": "Beans", "text": LONG, "year": 2020 + n % 3})
        documents.append(f"short {n}")
        made.append(DatasetLine(line_no=n + 1, id=f"q{n}", query="solar wind", documents=documents))
    return made


async def queued_payloads(redis: ArqRedis, batch: str, count: int) -> list[LinePayload]:
    found = []
    for n in range(count):
        raw = await redis.get(keys.arq_job(keys.job_id(batch, f"q{n}")))
        assert raw is not None
        found.append(deserialize(raw)["a"][0])
    return found


async def read_back(redis: ArqRedis, payload: LinePayload) -> LinePayload:
    """What the worker does: one MGET of the line's stored documents, then hydrate."""
    wanted = document_keys(payload)
    return hydrate(payload, await redis.mget(wanted) if wanted else [])


async def enqueue(redis: ArqRedis, lines: list[DatasetLine], batch: str = "b", ttl_ms: int = HOUR_MS) -> None:
    await enqueue_lines(
        redis, batch, lines, default_model="local/bm25", run="r", job_expiry_ms=ttl_ms, result_ttl_ms=ttl_ms
    )


async def test_each_large_document_is_stored_once_and_lines_read_back_as_written(redis: ArqRedis) -> None:
    lines = overlapping_lines(30)
    await enqueue(redis, lines)

    stored = {k async for k in redis.scan_iter(match=keys.document("*"))}
    # 10 passages and 3 distinct object documents, however many lines hold them; short texts inline
    assert len(stored) == 13
    payloads = await queued_payloads(redis, "b", 30)
    met: set[str] = set()
    for line, payload in zip(lines, payloads, strict=True):
        # a document's first use stays inline, later ones name it; short texts are always inline
        texts = [orjson.dumps(d).decode() for d in line.documents[:7]]
        assert payload.get("stored", []) == [i for i, text in enumerate(texts) if text in met]
        met.update(texts)
        assert payload["documents"][7] == line.documents[7]
        assert all(len(str(payload["documents"][i])) == 24 for i in payload.get("stored", []))
        expected = line_payload("b", line, "local/bm25", "r")
        back = await read_back(redis, payload)
        assert back == expected
        # an object document keeps its fields and their order (rank_fields and return_documents)
        assert list(back["documents"][6]) == ["id", "title", "text", "year"]


async def test_a_resumed_enqueue_writes_nothing_new_and_a_second_batch_shares_the_documents(
    redis: ArqRedis,
) -> None:
    lines = overlapping_lines(12)
    await enqueue(redis, lines, "first")
    before = int((await redis.info("keyspace"))["db0"]["keys"])
    await enqueue(redis, overlapping_lines(12), "first")  # a resume: every line already queued
    await enqueue(redis, overlapping_lines(12), "second")
    documents = [k async for k in redis.scan_iter(match=keys.document("*"))]
    assert len(documents) == 13
    # the second batch added its 12 jobs, its line set and its counters, but no document
    assert int((await redis.info("keyspace"))["db0"]["keys"]) == before + 12 + 2


async def test_expiry_is_pushed_out_to_the_longest_batch_and_never_in(redis: ArqRedis) -> None:
    key = keys.document(content_hash(orjson.dumps(passage(1))))  # in both lines: stored

    await enqueue(redis, overlapping_lines(2), "short", ttl_ms=HOUR_MS)
    assert 0 < await redis.pttl(key) <= HOUR_MS
    await enqueue(redis, overlapping_lines(2), "long", ttl_ms=10 * HOUR_MS)
    assert await redis.pttl(key) > 9 * HOUR_MS
    await enqueue(redis, overlapping_lines(2), "shorter", ttl_ms=HOUR_MS)
    assert await redis.pttl(key) > 9 * HOUR_MS  # a shorter-lived batch never shortens it

    await enqueue_lines(
        redis, "kept", overlapping_lines(2), default_model="local/bm25", run="r",
        job_expiry_ms=HOUR_MS, result_ttl_ms=0,
    )  # fmt: skip
    assert await redis.pttl(key) == -1  # RR_RESULT_TTL_DAYS=0: kept as long as that batch


def test_documents_live_at_least_as_long_as_the_jobs_that_name_them() -> None:
    assert document_ttl_ms(result_ttl_ms=HOUR_MS, job_expiry_ms=5 * HOUR_MS) == 5 * HOUR_MS
    assert document_ttl_ms(result_ttl_ms=30 * HOUR_MS, job_expiry_ms=5 * HOUR_MS) == 30 * HOUR_MS
    assert document_ttl_ms(result_ttl_ms=0, job_expiry_ms=5 * HOUR_MS) == 0


def test_documents_under_the_threshold_stay_inline_and_multibyte_text_is_measured_in_bytes(
    redis: ArqRedis,
) -> None:
    writer = DocumentWriter(redis, HOUR_MS)
    just_under = "x" * (STORE_MIN_BYTES - 3)  # its JSON has two quotes: one byte short
    multibyte = "é" * (STORE_MIN_BYTES // 2)  # few characters, but as many UTF-8 bytes as the limit
    documents: list[Any] = [just_under, multibyte, "x" * STORE_MIN_BYTES, {"text": "y" * STORE_MIN_BYTES}]
    first = unit_line(documents=list(documents))
    assert writer.stash(first, {}) == 0 and "stored" not in first  # a first use stays inline
    payload = unit_line(documents=list(documents))
    pending: dict[str, bytes] = {}
    added = writer.stash(payload, pending)
    assert payload["stored"] == [1, 2, 3]
    assert payload["documents"][0] == just_under
    assert added == sum(map(len, pending.values())) and len(pending) == 3
    writer.written(pending)
    again = unit_line(documents=[multibyte])
    fresh: dict[str, bytes] = {}
    assert writer.stash(again, fresh) == 0 and fresh == {}  # written once per run
    assert again["stored"] == [0]


async def test_a_missing_document_names_its_positions_and_never_ranks_without_it(redis: ArqRedis) -> None:
    await enqueue(redis, overlapping_lines(3))
    payload = (await queued_payloads(redis, "b", 3))[2]
    await redis.delete(keys.document(str(payload["documents"][3])))

    with pytest.raises(DocumentMissingError) as caught:
        await read_back(redis, payload)
    record = caught.value.to_record()
    assert record["code"] == "document_missing" and record["retryable"] is False
    assert record["documents"] == [3]
    assert "documents [3] (1 of 8) are no longer in Redis" in record["message"]
    assert "run the same enqueue command again" in record["message"]


async def test_a_document_that_is_not_what_its_hash_names_is_refused(redis: ArqRedis) -> None:
    await enqueue(redis, overlapping_lines(2))
    payload = (await queued_payloads(redis, "b", 2))[1]
    assert payload["stored"][0] == 0
    await redis.set(keys.document(str(payload["documents"][0])), orjson.dumps("another text"))
    with pytest.raises(DocumentMissingError) as caught:
        await read_back(redis, payload)
    assert caught.value.positions == [0]


def test_a_line_without_stored_documents_is_handed_over_as_it_is() -> None:
    payload = unit_line(documents=["a", {"id": 1, "text": "b"}])
    assert document_keys(payload) == []
    assert hydrate(payload, []) is payload


class RefusingReranker:
    """A provider that refuses every line for good (a permanent error)."""

    async def rerank(self, model: str, request: RerankRequest) -> RerankResponse:
        assert request.documents[0] == passage(1)  # the text, never its hash
        raise InvalidRequestError("refused", provider="test")


async def test_a_failed_line_is_dead_lettered_with_its_texts_so_retry_outlives_the_store(
    redis: ArqRedis,
) -> None:
    await register_batch(redis, "b", RUN, "source", 0)
    lines = overlapping_lines(2)
    await enqueue_lines(
        redis, "b", lines, default_model="local/bm25", run=RUN.digest, job_expiry_ms=HOUR_MS, result_ttl_ms=0
    )
    payload = (await queued_payloads(redis, "b", 2))[1]
    assert payload["stored"]
    refusing: Any = RefusingReranker()
    state = WorkerState(reranker=refusing, writer=RecordWriter(redis, 0), line_deadline=5, max_tries=3)
    await rerank_line({"redis": redis, "state": state, "job_try": 1}, payload)

    dead = orjson.loads(await redis.hget(keys.batch_failed("b"), keys.job_id("b", "q1")))  # type: ignore[misc]
    assert "stored" not in dead and dead["documents"] == lines[1].documents


def test_a_run_whose_first_documents_never_recur_stops_looking(redis: ArqRedis) -> None:
    """Below 1% repeats in the sample, every later document stays inline (no hashing cost)."""
    writer = DocumentWriter(redis, HOUR_MS, sample=200)
    for n in range(25):  # 200 distinct documents, then the sample is full
        writer.stash(unit_line(documents=[f"{n}.{k} {LONG}" for k in range(8)]), {})
    assert not writer.active
    late = unit_line(documents=[f"0.0 {LONG}", f"0.0 {LONG}"])
    assert writer.stash(late, {}) == 0 and "stored" not in late

    sharing = DocumentWriter(redis, HOUR_MS, sample=200)
    for line in overlapping_lines(25):
        sharing.stash(line_payload("b", line, "local/bm25", "r"), {})
    assert sharing.active


def test_validation_takes_the_sample_so_a_run_without_repeats_starts_with_the_store_off(
    redis: ArqRedis, tmp_path: Path
) -> None:
    """The writer's sample, taken by validation (:class:`DocumentSample`, fed through the enqueue
    pass's index): 200 distinct documents say the store is not worth it, shared passages say it
    is, and a run shorter than the sample keeps it on, as the writer would."""
    distinct, sharing, short = (DocumentSample(sample=200) for _ in range(3))
    for n in range(25):
        distinct.add(n + 1, b"", {"documents": [f"{n}.{k} {LONG}" for k in range(8)]})
    for line in overlapping_lines(25):
        sharing.add(line.line_no, b"", {"documents": line.documents})
    short.add(1, b"", {"documents": [f"0.{k} {LONG}" for k in range(8)]})
    assert (distinct.recurring, sharing.recurring, short.recurring) == (False, True, True)
    off = DocumentWriter(redis, HOUR_MS, recurring=False)
    late = unit_line(documents=[f"0.0 {LONG}", f"0.0 {LONG}"])
    assert off.stash(late, {}) == 0 and "stored" not in late

    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(7, docs_per_line=3))
    index = LineIndex()
    validate_file(path, ModelCheck(), lambda error: None, on_valid=index.add)
    assert index.documents.checked == 21 and index.documents.recurring  # short of the sample
