"""Lines queued verbatim: the job the worker reads is the payload a rebuilt line would have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from jobs import keys
from jobs.dataset import DatasetLine, trusted_line
from jobs.payload import line_payload
from jobs.serializer import deserialize
from jobs.validation import ModelCheck, validate_file
from jobs.verbatim import LineIndex, VerbatimJobs, VerbatimLine

LINES: list[Any] = [
    {"id": "q1", "query": "solar wind", "documents": ["a", "b"]},
    {"id": 7, "query": "q", "documents": ["a"], "top_n": 1},
    {"id": "q-é-日本:7", "query": 'naïve "quoted" \\ query', "documents": ["x\ny", "\u2028"]},
    {"documents": ["a"], "query": "q", "model": "cohere/rerank-v3.5", "id": "own-model"},
    {"id": "null-top-n", "query": "q", "documents": ["a"], "top_n": None},
    {"id": "null-model", "query": "q", "documents": ["a"], "model": None},
    {"id": "objects", "query": "q", "documents": [{"id": "d1", "text": "t"}]},
    {"id": "meta", "query": "q", "documents": ["a"], "metadata": {"qrels": [1]}},
    {"id": "rdocs", "query": "q", "documents": ["a"], "return_documents": False, "provider_params": {}},
    {"id": "q1", "query": "duplicate", "documents": ["a"]},
    {"id": "bad", "query": "", "documents": ["a"]},
    {"id": -(2**63), "query": "q", "documents": ["a"]},
]


def indexed(path: Path) -> list[VerbatimLine | DatasetLine]:
    index = LineIndex()
    report = validate_file(path, ModelCheck(), lambda error: None, on_valid=index.add)
    return list(index.lines(path, report))


@pytest.mark.parametrize("spaced", [False, True])
@pytest.mark.parametrize(("corpus", "no_cache"), [(None, False), ("c0ffee", True)])
def test_a_verbatim_job_reads_as_the_rebuilt_payload(
    tmp_path: Path, spaced: bool, corpus: str | None, no_cache: bool
) -> None:
    """json.dumps writes spaces after separators, orjson none: both are copied as they are (an id
    written with escapes is another matter: the next test)."""
    path = tmp_path / "d.jsonl"

    def dumps(line: Any) -> str:
        return json.dumps(line, ensure_ascii=False) if spaced else orjson.dumps(line).decode()

    path.write_text("".join(dumps(line) + "\n" for line in LINES))
    jobs = VerbatimJobs("b", "local/bm25", "r" * 32, corpus, no_cache)
    found = indexed(path)
    no_duplicate_no_bad_line = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12]
    assert [line.line_no for line in found] == no_duplicate_no_bad_line
    verbatim = [line for line in found if isinstance(line, VerbatimLine)]
    assert [line.line_no for line in verbatim] == [1, 2, 3, 4, 5, 7, 12]
    for line in verbatim:
        rebuilt = trusted_line(line.line_no, line.raw)
        expected = line_payload("b", rebuilt, rebuilt.model or "local/bm25", "r" * 32, corpus)
        if no_cache:
            expected["no_cache"] = True
        job = deserialize(jobs.job(line))
        assert job["f"] == keys.JOB_FUNCTION
        assert {k: v for k, v in job["a"][0].items() if v is not None} == expected
        assert line.key == keys.line_key(rebuilt.id).encode()
        assert line.member == keys.line_member(rebuilt.id).encode()


def test_a_line_whose_id_changed_since_validation_is_rebuilt_from_what_it_says(tmp_path: Path) -> None:
    """The file changed between the passes (enqueue then reports it): a line that no longer holds
    the id validation noted is rebuilt, so its job id and its payload name the same line."""
    path = tmp_path / "d.jsonl"
    escaped = '{"id": "\\u00e9", "query": "q", "documents": ["a"]}\n'
    path.write_text('{"id": "q1", "query": "q", "documents": ["a"]}\n' + escaped)
    index = LineIndex()
    report = validate_file(path, ModelCheck(), lambda error: None, on_valid=index.add)
    path.write_text('{"id": "q9", "query": "q", "documents": ["a"]}\n' + escaped)
    first, second = index.lines(path, report)
    assert isinstance(first, DatasetLine) and first.id == "q9"
    assert isinstance(second, DatasetLine) and second.id == "é"  # written escaped: rebuilt too
