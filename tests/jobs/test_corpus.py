"""--corpus files: JSONL (BEIR's corpus.jsonl), TSV, and the errors that name their row."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.corpus import CorpusError, load_corpus
from jobs.dataset import trusted_line
from jobs.validation import ModelCheck, validate_file


def test_a_beir_corpus_and_its_id_spellings(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"_id": "d1", "title": "Solar", "text": "Panels turn light into power."}\n'
        '{"id": 7, "text": "Espresso is brewed under pressure."}\n'
        '{"docid": "d3", "title": "", "text": "Rivers carve valleys."}\n'
    )
    corpus = load_corpus(path)
    assert corpus.documents == {
        "d1": {"title": "Solar", "text": "Panels turn light into power."},
        "7": {"text": "Espresso is brewed under pressure."},
        "d3": {"text": "Rivers carve valleys."},
    }
    path.write_text(path.read_text().replace("Rivers", "Glaciers"))
    assert load_corpus(path).digest != corpus.digest


def test_a_tsv_corpus_with_or_without_titles_and_header(tmp_path: Path) -> None:
    path = tmp_path / "collection.tsv"
    path.write_text("docid\ttext\nd1\tPanels turn light into power.\nd2\tSolar\tA title and a text.\n")
    assert load_corpus(path).documents == {
        "d1": {"text": "Panels turn light into power."},
        "d2": {"title": "Solar", "text": "A title and a text."},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', "line 2: duplicate id 'd1'"),
        ('{"title": "t", "text": "a"}\n', "line 1: needs an id"),
        ('{"_id": "d1", "text": 3}\n', "line 1: text must be a string"),
        ("not json\n", "line 1: invalid JSON"),
    ],
)
def test_a_bad_row_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_lines_of_ids_validate_against_the_corpus_and_resolve_to_its_text(tmp_path: Path) -> None:
    corpus_path = tmp_path / "corpus.jsonl"
    corpus_path.write_text(
        '{"_id": "d1", "title": "Solar", "text": "Panels."}\n{"_id": "d2", "text": "Coffee."}\n'
    )
    corpus = load_corpus(corpus_path)
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(
        '{"id": "q1", "query": "solar", "documents": [{"id": "d1", "score": 12.5}, {"id": "d2"}, "inline"]}\n'
        '{"id": "q2", "query": "solar", "documents": [{"id": "d1"}, {"id": "d9"}]}\n'
    )
    messages: list[str] = []
    report = validate_file(
        dataset, ModelCheck(), lambda error: messages.extend(error.describe()), corpus=corpus
    )
    assert (report.valid, messages) == (1, ["line 2: documents[1]: id 'd9' is not in the corpus"])
    first = trusted_line(1, dataset.read_bytes().splitlines()[0])
    assert corpus.resolve(first).documents == [
        {"id": "d1", "title": "Solar", "text": "Panels."},
        {"id": "d2", "text": "Coffee."},
        "inline",
    ]
