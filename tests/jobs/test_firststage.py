"""``enqueue.py --run``: a first-stage run, topics and a corpus become dataset lines of ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import enqueue
from jobs.firststage import FirstStageError, build_dataset, first_stage_dataset

TOPICS = {"q1": "solar panels", "q2": "espresso"}
CORPUS = {"d1", "d2", "d3", "d4"}
RUN = "q1 Q0 d2 1 9.0 bm25\nq1 Q0 d1 2 8.0 bm25\nq1 Q0 d3 3 7.0 bm25\nq2 Q0 d4 1 5.0 bm25\n"


def test_each_query_becomes_a_line_of_its_top_documents_by_id(tmp_path: Path) -> None:
    run = tmp_path / "bm25.run"
    run.write_text(RUN)
    out = tmp_path / "ds" / "bm25-top2.jsonl"
    built = build_dataset(run, {**TOPICS, "q3": "unretrieved"}, CORPUS, 2, out)
    assert (built.queries, built.documents, built.topics_without_run) == (2, 3, 1)
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"id": "q1", "query": "solar panels", "documents": [{"id": "d2"}, {"id": "d1"}]},
        {"id": "q2", "query": "espresso", "documents": [{"id": "d4"}]},
    ]
    written = out.stat().st_mtime_ns
    build_dataset(run, TOPICS, CORPUS, 2, out)
    # the same content is not rewritten: a second model's enqueue reads the very same file
    assert out.stat().st_mtime_ns == written


@pytest.mark.parametrize(
    ("run", "depth", "message"),
    [
        (RUN + "q9 Q0 d1 1 1.0 bm25\n", 10, r"bm25\.run: line 5: query 'q9' is not in the topics"),
        (RUN.replace("q1 Q0 d3", "q1 Q0 d7"), 10, r"bm25\.run: line 3: document 'd7' is not in the corpus"),
        ("q1 Q0 d1 1 1.0\n", 10, r"bm25\.run: line 1: needs 6 columns"),
        (RUN, 0, r"--depth 0: must be 1 to 10000"),
    ],
)
def test_a_run_that_does_not_fit_the_topics_or_corpus_is_named(
    tmp_path: Path, run: str, depth: int, message: str
) -> None:
    path = tmp_path / "bm25.run"
    path.write_text(run)
    out = tmp_path / "out.jsonl"
    with pytest.raises(FirstStageError, match=message):
        build_dataset(path, TOPICS, CORPUS, depth, out)
    assert not out.exists()
    assert list(tmp_path.glob(".*partial")) == []


def test_a_document_beyond_the_depth_need_not_be_in_the_corpus(tmp_path: Path) -> None:
    run = tmp_path / "bm25.run"
    run.write_text(RUN.replace("q1 Q0 d3", "q1 Q0 d7"))
    assert build_dataset(run, TOPICS, CORPUS, 2, tmp_path / "out.jsonl").documents == 3


def test_run_needs_topics_and_corpus_and_their_errors_name_their_file(tmp_path: Path) -> None:
    run = tmp_path / "bm25.run"
    run.write_text(RUN)
    with pytest.raises(FirstStageError, match="--run needs --topics and --corpus"):
        first_stage_dataset(run, None, tmp_path / "c.jsonl", 10, None)
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "x"}\n')
    with pytest.raises(FirstStageError, match=r"topics\.tsv: line 1: needs qid<TAB>text"):
        first_stage_dataset(run, topics, corpus, 10, None)


def test_enqueue_takes_a_dataset_or_a_run_and_names_a_bad_run_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "bm25.run"
    run.write_text(RUN.replace("q2 Q0 d4 1 5.0 bm25", "q2 Q0 d4 1 5.0"))
    (tmp_path / "topics.tsv").write_text("q1\tsolar panels\nq2\tespresso\n")
    (tmp_path / "corpus.tsv").write_text("d1\ta\nd2\tb\nd3\tc\nd4\td\n")
    assert enqueue.main(["--no-progress"]) == 2
    assert enqueue.main(["data.jsonl", "--run", str(run)]) == 2
    assert "give a dataset or --run (with --topics and --corpus), not both" in capsys.readouterr().err
    assert enqueue.main(["--run", str(run), "--topics", "topics.tsv", "--corpus", "corpus.tsv"]) == 2
    assert f"error: {run}: line 4: needs 6 columns" in capsys.readouterr().err
    assert not (tmp_path / "results" / "datasets" / "bm25-top100.jsonl").exists()
