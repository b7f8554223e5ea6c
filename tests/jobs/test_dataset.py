"""Dataset lines and whole-file validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobs import dataset, keys
from jobs.dataset import DatasetLine, LineError, check_line, parse_line
from jobs.payload import line_payload, rerank_request
from jobs.validation import ModelCheck, ValidationReport, validate_file
from tests.support import run_script, synthetic_lines, write_dataset


def errors_of(obj: Any) -> list[tuple[str, str]]:
    parsed = parse_line(7, json.dumps(obj).encode())
    assert isinstance(parsed, LineError)
    return [(e.field, e.reason) for e in parsed.errors]


def test_minimal_line_parses_with_defaults() -> None:
    parsed = parse_line(1, b'{"id": 5, "query": "q", "documents": ["a", {"id": "d", "text": "b"}]}')
    assert isinstance(parsed, DatasetLine)
    assert (parsed.id, parsed.top_n, parsed.return_documents) == (5, None, False)
    assert keys.job_id("b", parsed.id) == "b:5"
    request = rerank_request(line_payload("b", parsed, "local/bm25", "r"))
    assert request.documents == ["a", {"id": "d", "text": "b"}]


def test_every_optional_field_is_carried() -> None:
    line = {
        "id": "x",
        "query": "q",
        "documents": [{"title": "t", "body": "b"}],
        "model": "cohere/rerank-v3.5",
        "top_n": 2,
        "rank_fields": ["title"],
        "return_documents": True,
        "max_chunks_per_doc": 3,
        "max_tokens_per_doc": 100,
        "metadata": {"k": [1, 2]},
    }
    parsed = parse_line(1, json.dumps(line).encode())
    assert isinstance(parsed, DatasetLine)
    assert parsed.model == "cohere/rerank-v3.5"
    payload = line_payload("b", parsed, "ignored/model", "r")
    assert payload["model"] == "ignored/model"
    request = rerank_request(payload)
    assert (request.rank_fields, request.return_documents, request.top_n) == (["title"], True, 2)
    assert (request.max_chunks_per_doc, request.max_tokens_per_doc) == (3, 100)
    assert payload["metadata"] == {"k": [1, 2]}
    assert (parsed.max_chunks_per_doc, parsed.max_tokens_per_doc) == (3, 100)
    assert parsed.metadata == {"k": [1, 2]} and parsed.has_metadata


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"query": "q", "documents": ["a"]}, [("id", "is required")]),
        (
            {"id": True, "query": "q", "documents": ["a"]},
            [("id", "must be a string or an integer, got boolean")],
        ),
        ({"id": " ", "query": "q", "documents": ["a"]}, [("id", "must not be empty")]),
        ({"id": "a", "query": "  ", "documents": ["a"]}, [("query", "must be a non-empty string")]),
        ({"id": "a", "query": "q", "documents": []}, [("documents", "must not be empty")]),
        ({"id": "a", "query": "q", "documents": "a"}, [("documents", "must be an array, got string")]),
        (
            {"id": "a", "query": "q", "documents": ["a", 3, {"text": 4}, {"id": "z"}]},
            [
                ("documents[1]", "must be a string or an object, got number"),
                ("documents[2].text", "must be a string, got number"),
                ("documents[3]", "has no text to rank besides its id (fields: id)"),
            ],
        ),
        (
            {"id": "a", "query": "q", "documents": [{"id": "d7"}, {"_id": "d8", "score": 12.5}]},
            [
                (
                    "documents",
                    "all 2 documents are only ids, with no text to rank; give each document's "
                    "text (a string, or an object with a text field), or pass --corpus FILE to look "
                    "the ids up; rankers never see ids",
                )
            ],
        ),
        (
            {"id": "a", "query": "q", "documents": [{"id": "d1", "title": "t"}, {"docid": "d2", "rank": 3}]},
            [("documents[1]", "has no text to rank besides its id (fields: docid, rank)")],
        ),
        (
            {"id": "a", "query": "q", "documents": [{"title": "t"}, {"body": "b"}], "rank_fields": ["title"]},
            [("documents[1]", "has none of rank_fields (title) to rank")],
        ),
        (
            {"id": "a", "query": "q", "documents": ["a"], "top_n": 0},
            [("top_n", "must be a positive integer, got 0")],
        ),
        (
            {"id": "a", "query": "q", "documents": ["a"], "top_n": "3"},
            [("top_n", "must be a positive integer, got string")],
        ),
        (
            {"id": "a", "query": "q", "documents": ["a"], "return_documents": "yes"},
            [("return_documents", "must be true or false, got string")],
        ),
        (
            {"id": "a", "query": "q", "documents": ["a"], "rank_fields": []},
            [("rank_fields", "must be a non-empty array of field names")],
        ),
        (
            {"id": "a", "query": "q", "documents": ["a"], "topk": 3},
            [("topk", "is not a known field (put extra data under metadata)")],
        ),
    ],
)
def test_each_problem_names_its_field(obj: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors_of(obj) == expected


def test_invalid_json_and_non_objects() -> None:
    bad_json = parse_line(3, b"{nope")
    assert isinstance(bad_json, LineError)
    assert bad_json.describe()[0].startswith("line 3: (line): invalid JSON")
    array = parse_line(4, b"[1]")
    assert isinstance(array, LineError)
    assert array.describe() == ["line 4: (line): must be a JSON object, got array"]


def collect(path: Path) -> tuple[ValidationReport, list[str]]:
    messages: list[str] = []
    report = validate_file(path, ModelCheck(), lambda error: messages.extend(error.describe()))
    return report, messages


def test_whole_file_reports_every_bad_line_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "query": "q", "documents": ["x"]}\n'
        "\n"
        '{"id": "b", "query": "", "documents": ["x"]}\n'
        "not json\n"
        '{"id": "c", "query": "q", "documents": ["x"], "model": "nope/m"}\n'
        '{"id": "d", "query": "q", "documents": ["x"], "model": "local/bm99"}\n'
        '{"id": "a", "query": "q", "documents": ["y"]}\n'
        '{"id": "e", "query": "q", "documents": ["x"]}\n'
    )
    report, messages = collect(path)
    assert (report.lines, report.invalid_lines, report.valid) == (7, 5, 2)
    assert report.duplicate_lines == {7}
    assert messages[1].startswith("line 4: (line): invalid JSON: ")
    assert messages[2].startswith("line 5: model: unknown provider 'nope' in model 'nope/m'; known: local, ")
    assert "cohere" in messages[2]
    assert messages[:1] + messages[3:] == [
        "line 3: query: must be a non-empty string",
        "line 6: model: unknown local model 'local/bm99'; known: local/bm25, local/ql",
        "line 7: id: duplicate id 'a' (first on line 1)",
    ]


def test_duplicates_count_ids_of_otherwise_bad_lines_once(tmp_path: Path) -> None:
    path = write_dataset(
        tmp_path / "d.jsonl",
        [
            {"id": 1, "query": "q", "documents": ["x"]},
            {"id": "1", "query": "", "documents": ["x"]},
            {"id": "1", "query": "q", "documents": ["x"]},
        ],
    )
    report, messages = collect(path)
    assert report.duplicate_lines == {2, 3}
    assert report.invalid_lines == 2
    assert "line 2: id: duplicate id '1' (first on line 1)" in messages


def test_clean_file_has_no_errors(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.jsonl", synthetic_lines(500))
    report, messages = collect(path)
    assert report.ok and report.valid == 500 and messages == []


def test_a_line_of_ids_is_rejected_by_line_number_and_never_enqueued(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"id": "q1", "query": "solar", "documents": ["solar wind", "river"]}\n'
        '{"id": "q2", "query": "solar", "documents": [{"id": "d7"}, {"id": "d9"}]}\n'
    )
    report, messages = collect(path)
    assert (report.valid, report.invalid_lines) == (1, 1)
    assert messages == [
        "line 2: documents: all 2 documents are only ids, with no text to rank; give each "
        "document's text (a string, or an object with a text field), or pass --corpus FILE to look "
        "the ids up; rankers never see ids"
    ]
    rejects = tmp_path / "rejects.jsonl"
    done = run_script(
        "enqueue.py", str(path), "--redis-url", "redis://127.0.0.1:9/0", "--rejects", str(rejects), env={}
    )
    assert done.returncode == 1 and "nothing enqueued" in done.stderr and "line 2: documents" in done.stderr
    assert [json.loads(line)["line"] for line in rejects.read_text().splitlines()] == [2]


BASE: dict[str, Any] = {"id": "a", "query": "q", "documents": ["x", "y"]}
NEAR_PLAIN = [
    *({**BASE, "id": value} for value in ("", " ", "\u2003", "i" * 512, "i" * 513, 0, -(2**63), 2**64 - 1)),
    *({**BASE, "id": value} for value in (2**64, -(2**63) - 1, True, 1.5, None, ["a"], {"a": 1})),
    *({**BASE, "query": value} for value in ("", " \t", "\u2003", 5, None, ["q"])),
    *({**BASE, "documents": value} for value in ([], ["a"] * 10_000, ["a"] * 10_001, ["", " "])),
    *({**BASE, "documents": value} for value in (["a", 1], ["a", None], ["a", {"text": "t"}], "a", None)),
    *({**BASE, "top_n": value} for value in (None, 0, 1, -1, True, 2.0, "3", 2**64 - 1, 2**64)),
    *({**BASE, "model": m} for m in (None, "", " ", "bogus", "nope/m", "local/bm25", "local/bm99", 5)),
    {**BASE, "topk": 3},
    {**BASE, "metadata": None},
    {"query": "q", "documents": ["x"]},
    {"id": "a", "documents": ["x"]},
]


@pytest.mark.parametrize("obj", NEAR_PLAIN)
def test_the_plain_line_shortcut_decides_as_the_full_checks_do(
    obj: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines of the shortcut's shape and just off it: accepted or refused, with the same
    errors, whether the shortcut runs or every field is checked one by one."""
    raw = json.dumps(obj).encode()
    models = ModelCheck()
    shortcut = check_line(5, raw, models.problem)
    monkeypatch.setattr(dataset, "_plain", lambda *_: False)
    assert shortcut == check_line(5, raw, models.problem)
