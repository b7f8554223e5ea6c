"""--corpus files: JSONL (BEIR's corpus.jsonl), TSV, and the errors that name their row."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from jobs.corpus import CorpusError, load_corpus
from jobs.dataset import trusted_line
from jobs.validation import ModelCheck, validate_file
from tests.support import refused


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
    refused(tmp_path / "corpus.jsonl", content, load_corpus, CorpusError, message)


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


TREC_DOCS = """<DOC>
<DOCNO> FT911-1 </DOCNO>
<HEADLINE>Solar power</HEADLINE>
<TEXT>
Panels turn <B>light</B> into power.
</TEXT>
<TEXT>Second part.</TEXT>
</DOC>
<DOC>
<DOCNO>FT911-2</DOCNO>
<TEXT>Espresso is brewed under pressure.</TEXT>
</DOC>
"""


def test_trec_document_files_a_folder_of_them_gzipped_and_a_beir_folder(tmp_path: Path) -> None:
    single = tmp_path / "ft911.sgml"
    single.write_text(TREC_DOCS)
    expected = {
        "FT911-1": {"title": "Solar power", "text": "Panels turn light into power. Second part."},
        "FT911-2": {"text": "Espresso is brewed under pressure."},
    }
    assert load_corpus(single).documents == expected
    folder = tmp_path / "trec"
    folder.mkdir()
    (folder / "a.gz").write_bytes(gzip.compress(TREC_DOCS.encode()))
    # one document per line, as some conversions write them
    (folder / "b").write_text("<DOC><DOCNO>LA-1</DOCNO><TEXT>Rivers carve valleys.</TEXT></DOC>\n")
    assert load_corpus(folder).documents == {**expected, "LA-1": {"text": "Rivers carve valleys."}}
    beir = tmp_path / "scifact"
    beir.mkdir()
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "solar"}\n')
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "Panels."}\n')
    assert load_corpus(beir).documents == {"d1": {"text": "Panels."}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<DOC>\n<TEXT>no number</TEXT>\n</DOC>\n", r"ft\.sgml: line 1: <DOC> without a <DOCNO>"),
        (
            "<DOC><DOCNO>a</DOCNO><TEXT>x</TEXT>\n</DOC>\n<DOC>\n<DOCNO>b</DOCNO>\n",
            r"line 3: <DOC> never closed",
        ),
        ("<DOC>\n<DOCNO>a</DOCNO>\n<TEXT>x</TEXT>\n", r"line 1: <DOC> never closed"),
        ("<DOC>\n<DOCNO>a</DOCNO>\n</DOC>\n", r"line 1: document 'a' has no <TEXT>"),
        ("<DOC><DOCNO>a</DOCNO><TEXT>x</TEXT>\n</DOC>\nstray\n", r"line 3: text outside <DOC>"),
        (TREC_DOCS + TREC_DOCS, r"line 13: duplicate id 'FT911-1'"),
    ],
)
def test_a_bad_trec_document_is_named_by_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    refused(tmp_path / "ft.sgml", content, load_corpus, CorpusError, message)
