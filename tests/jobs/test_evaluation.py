"""Evaluation and export without Redis: the missing-query rule, bad qrels and metrics, a ranking
without document ids, and the errors that say how to install a missing extra."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from jobs import evaluation, formats
from jobs.evaluation import EvaluationError, evaluate, read_qrels, table
from jobs.formats import FormatError, rows_of
from tests.support import refused

QRELS = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


def test_a_judged_query_the_run_lacks_counts_zero_and_is_listed() -> None:
    scores = evaluate({"q1": {"d2": 2.0, "d1": 1.0}, "q9": {"d1": 1.0}}, QRELS, ["RR@10", "R@1"], "run")
    assert scores.per_query == {"RR@10": {"q1": 0.5, "q2": 0.0}, "R@1": {"q1": 0.0, "q2": 0.0}}
    assert (scores.means, scores.missing) == ({"RR@10": 0.25, "R@1": 0.0}, ["q2"])
    assert table([scores], ["RR@10", "R@1"]).splitlines()[2] == "run        1    0.2500    0.0000"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 0 d1 1\nq1 d2\n", r"qrels: line 2: needs qid iter docid relevance"),
        ("q1 0 d1 high\n", r"qrels: line 1: needs qid iter docid relevance"),
        ("\n", r"qrels: no judgements"),
    ],
)
def test_bad_qrels_are_named_by_line(tmp_path: Path, content: str, message: str) -> None:
    refused(tmp_path / "qrels", content, read_qrels, EvaluationError, message)


def test_trec_and_beir_qrels(tmp_path: Path) -> None:
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\n\nq2 Q0 d3 2\n")
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    assert read_qrels(trec) == read_qrels(beir) == QRELS


def test_an_unknown_metric_is_an_error_naming_it() -> None:
    with pytest.raises(EvaluationError, match=r"--metrics 'nDGC@10': not an ir_measures measure"):
        evaluate({"q1": {"d1": 1.0}}, QRELS, ["nDGC@10"], "run")


def test_a_ranking_of_documents_without_ids_cannot_be_a_run() -> None:
    record = {"id": "q1", "line": 4, "model": "m", "results": [{"index": 1, "relevance_score": 0.5}]}
    with pytest.raises(FormatError, match=r"line 4 \(id 'q1'\): document 1 has no id"):
        list(rows_of(record))


def test_a_trec_run_refuses_ids_it_cannot_carry(tmp_path: Path) -> None:
    record = {
        "id": "q 1",
        "line": 2,
        "model": "my model",
        "results": [{"index": 0, "relevance_score": 1.0, "document_id": "d1"}],
    }
    with tempfile.TemporaryFile() as records:
        records.write(orjson.dumps(record) + b"\n")
        with pytest.raises(
            FormatError, match=r"line 2 \(id 'q 1'\): query id 'q 1' is empty or holds whitespace"
        ):
            formats.write_trec(records, tmp_path / "run.trec", None)
        records.seek(0)
        records.truncate()
        records.write(orjson.dumps({**record, "id": "q1"}) + b"\n")
        formats.write_trec(records, tmp_path / "run.trec", None)
    assert (tmp_path / "run.trec").read_text() == "q1 Q0 d1 1 1.0 my_model\n"


def test_missing_extras_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_extras(name: str, package: str | None = None) -> ModuleType:
        if name.split(".")[0] in {"pyarrow", "ir_measures"}:
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_extras)
    with pytest.raises(FormatError, match=r"pip install 'rerank-runner\[parquet\]'"):
        formats.pyarrow_modules()
    with pytest.raises(EvaluationError, match=r"pip install 'rerank-runner\[eval\]'"):
        evaluation.ir_measures_module()
