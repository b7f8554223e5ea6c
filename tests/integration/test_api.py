"""The Python API (``rerank_runner``): from plain code and from inside a running event loop,
local/bm25 and local/ql on the embedded Redis or a given one; what it returns is what the
batches hold."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import orjson
import pandas
import pytest

import rerank_runner
from tests.collection import build, first_stage
from tests.process_tools import Workers
from tests.support import read_jsonl, run_script, synthetic_lines

pytestmark = pytest.mark.integration

MODELS = ["local/bm25", "local/ql"]


def exported_batches(state: Path, cwd: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every batch in the state dir, exported with ``batch.py results``: (model, id) -> record."""
    listed = run_script("batch.py", "--state-dir", str(state), "list", env={}, cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    records = {}
    for batch in listed.stdout.split():
        out = cwd / f"{batch}.out.jsonl"
        done = run_script(
            "batch.py", "--state-dir", str(state), "results", batch, "--output", str(out), env={}, cwd=cwd
        )
        assert done.returncode == 0, done.stderr
        records.update({(r["model"], r["id"]): r for r in read_jsonl(out)})
    return records


def scores(record: dict[str, Any]) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in record["results"]]


def test_from_plain_code_two_models_return_what_their_batches_hold(tmp_path: Path) -> None:
    lines = synthetic_lines(5)
    state = tmp_path / "state"
    records = rerank_runner.rerank(lines, MODELS, state_dir=state)
    assert [(r["model"], r["id"]) for r in records] == [(m, line["id"]) for m in MODELS for line in lines]
    held = exported_batches(state, tmp_path)
    assert len(held) == 10
    for record in records:
        assert scores(record) == scores(held[(record["model"], record["id"])])
        assert record["results"][0]["index"] == 0  # the document sharing the query's words
    again = rerank_runner.rerank(lines, MODELS, state_dir=state)  # the same batches: a resume
    assert [scores(r) for r in again] == [scores(r) for r in records]


async def test_the_sync_call_inside_a_running_event_loop_as_in_a_notebook(tmp_path: Path) -> None:
    collection = build(per_topic=3, background_docs=20)
    stage = first_stage(collection, 6)
    corpus = collection.write_corpus(tmp_path / "corpus.jsonl")
    frame = pandas.DataFrame(
        [{"qid": q, "query": collection.queries[q], "docno": d} for q, docs in stage.items() for d, _ in docs]
    )
    loop_thread = threading.get_ident()
    ranked = rerank_runner.rerank_frame(frame, MODELS, corpus=corpus, state_dir=tmp_path / "state")
    assert threading.get_ident() == loop_thread and asyncio.get_running_loop().is_running()
    assert list(ranked.columns) == ["qid", "query", "docno", "model", "score", "rank"]
    assert len(ranked) == 2 * len(frame)
    held = exported_batches(tmp_path / "state", tmp_path)
    for (model, qid), rows in ranked.groupby(["model", "qid"]):
        record = held[(str(model), str(qid))]
        assert list(rows["docno"]) == [r["document_id"] for r in record["results"]]
        assert list(rows["score"]) == [r["relevance_score"] for r in record["results"]]
        assert list(rows["rank"]) == list(range(len(rows)))
    bm25 = ranked[ranked["model"] == "local/bm25"]
    first = {(q, d): s for q, docs in stage.items() for d, s in docs}
    for qid, docno, score in zip(bm25["qid"], bm25["docno"], bm25["score"], strict=True):
        assert score == pytest.approx(first[(str(qid), str(docno))], rel=1e-5)  # corpus statistics


async def test_async_form_on_a_given_redis_with_workers(redis_url: str, workers: Workers) -> None:
    workers.start({"REDIS_URL": redis_url})
    lines = synthetic_lines(3)
    records = await rerank_runner.arerank(lines, "local/ql", redis_url=redis_url)
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert {r["model"] for r in records} == {"local/ql"}
    assert all(r["results"][0]["relevance_score"] <= 0 for r in records)


def test_invalid_lines_raise_naming_the_line_and_field(tmp_path: Path) -> None:
    lines = [*synthetic_lines(2), {"id": "bad", "query": "", "documents": ["x"]}]
    with pytest.raises(rerank_runner.RerankFailedError, match="invalid lines") as raised:
        rerank_runner.rerank(lines, state_dir=tmp_path / "state")
    [problem] = raised.value.problems
    assert problem["line"] == 3 and "query" in orjson.dumps(problem).decode()
    with pytest.raises(ValueError, match="lacks docno"):
        rerank_runner.rerank_frame(pandas.DataFrame([{"qid": "1", "query": "q"}]), state_dir=tmp_path / "s")
