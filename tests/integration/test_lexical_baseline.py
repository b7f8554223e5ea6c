"""local/bm25 with corpus statistics is an honest baseline: re-ranking a full-index BM25 first
stage with it keeps that stage's quality (the issue: per-line statistics took nDCG@10 from
0.428 to 0.276).  Real processes: enqueue.py --corpus, a burst worker, batch.py results."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from jobs import keys
from jobs.corpus import load_corpus
from tests.collection import build, doc_ids, first_stage, ndcg, ranking
from tests.e2e import CliRun
from tests.support import read_jsonl, run_script, write_dataset

pytestmark = pytest.mark.integration

DEPTH = 20


async def test_reranking_a_bm25_first_stage_with_corpus_statistics_keeps_its_ndcg(
    redis_url: str, tmp_path: Path
) -> None:
    collection = build()
    stage = first_stage(collection, DEPTH)
    baseline = ndcg(doc_ids(stage), collection.qrels)
    assert baseline > 0.7  # a first stage that ranks relevant documents well
    corpus = collection.write_corpus(tmp_path / "corpus.jsonl")
    dataset = write_dataset(tmp_path / "run.jsonl", collection.dataset(stage))
    cli = CliRun({"REDIS_URL": redis_url}, tmp_path)

    _, stdout, with_corpus = cli.run(dataset, "--corpus", str(corpus))
    assert f"corpus statistics for the local models: {len(collection.corpus)} documents" in stdout
    assert ndcg(ranking(with_corpus), collection.qrels) >= baseline - 1e-12
    # the corpus statistics reached the worker: its scores are the full-index BM25 scores
    for record in with_corpus:
        first = dict(stage[record["id"]])
        for result in record["results"]:
            assert result["relevance_score"] == pytest.approx(first[result["document_id"]], rel=1e-5)

    # without a corpus (documents inline), each line is its own collection: other scores
    inline = [
        {
            **line,
            "documents": [{"id": d["id"], "text": collection.corpus[d["id"]]} for d in line["documents"]],
        }
        for line in collection.dataset(stage)
    ]
    _, _, per_line = cli.run(write_dataset(tmp_path / "inline.jsonl", inline))
    assert ndcg(ranking(per_line), collection.qrels) < baseline


async def test_a_line_whose_corpus_statistics_expired_fails_instead_of_ranking_otherwise(
    redis_url: str, tmp_path: Path
) -> None:
    collection = build(per_topic=2, background_docs=10)
    stage = first_stage(collection, 5)
    corpus = collection.write_corpus(tmp_path / "corpus.jsonl")
    dataset = write_dataset(tmp_path / "run.jsonl", collection.dataset(stage))
    cli = CliRun({"REDIS_URL": redis_url}, tmp_path)
    enqueued = cli.enqueue(dataset, "--corpus", str(corpus), "--model", "local/ql", "--batch", "gone")
    assert enqueued.returncode == 0, enqueued.stderr
    async with Redis.from_url(redis_url) as redis:
        assert await redis.delete(keys.corpus_stats(load_corpus(corpus).digest)) == 1
    assert run_script("worker.py", "--burst", env=cli.env).returncode == 0
    out, err = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    exported = run_script(
        "batch.py", "results", "gone", "--output", str(out), "--errors", str(err), env=cli.env
    )
    assert exported.returncode == 0, exported.stderr
    assert read_jsonl(out) == []
    errors = read_jsonl(err)
    assert len(errors) == len(stage)
    assert {e["error"]["code"] for e in errors} == {"configuration"}
    assert "run enqueue again with the same --corpus" in errors[0]["error"]["message"]
