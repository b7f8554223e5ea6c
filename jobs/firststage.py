"""``enqueue.py --run RUN --topics TOPICS --corpus CORPUS --depth K``: a first-stage run turned
into dataset lines, streaming.

Each query of the run (in run order) becomes one line: its id, its text from the topics, and
its top K documents *by id* (``{"id": docid}``, highest first-stage score first), so the corpus
resolves their text exactly as for a dataset given by id and every result names its documents
by their own ids.  The lines are written to a file (``results/datasets/<run>-top<K>.jsonl``)
that the ordinary dataset path then validates and enqueues; the file is only rewritten when
its content changes, so every model run over the same inputs reads the same file.  A query the
topics lack or a document the corpus lacks is an error naming the run file and line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from jobs.corpus import Corpus, CorpusError, load_corpus
from jobs.dataset import MAX_DOCUMENTS
from jobs.identity import slug
from jobs.runfile import RunFileError, read_run
from jobs.topics import TopicsError, load_topics

__all__ = [
    "DATASET_DIR",
    "DEFAULT_DEPTH",
    "BuiltDataset",
    "FirstStageError",
    "build_dataset",
    "dataset_path",
    "first_stage_dataset",
]

DATASET_DIR = Path("results") / "datasets"
DEFAULT_DEPTH = 100


class FirstStageError(ValueError):
    """The run, topics and corpus do not fit together; the message names the file and line."""


@dataclass(frozen=True)
class BuiltDataset:
    path: Path
    queries: int
    documents: int
    topics_without_run: int
    """Topics the run has no line for (they get no dataset line)."""


def dataset_path(run: Path, depth: int, directory: Path = DATASET_DIR) -> Path:
    return directory / f"{slug(run.stem, 50) or 'run'}-top{depth}.jsonl"


def _same_content(a: Path, b: Path) -> bool:
    if not b.is_file() or a.stat().st_size != b.stat().st_size:
        return False
    return hashlib.blake2b(a.read_bytes()).digest() == hashlib.blake2b(b.read_bytes()).digest()


def _lines(
    run: Path, topics: Mapping[str, str], corpus: Container[str], depth: int, out: Path
) -> tuple[int, int, set[str]]:
    queries = documents = 0
    seen: set[str] = set()
    with out.open("wb") as handle:
        for query in read_run(run):
            if query.qid not in topics:
                raise FirstStageError(
                    f"{run}: line {query.first_line}: query {query.qid!r} is not in the topics"
                )
            top = query.ranked()[:depth]
            for entry in top:
                if entry.docid not in corpus:
                    raise FirstStageError(
                        f"{run}: line {entry.line}: document {entry.docid!r} is not in the corpus"
                    )
            line = {"id": query.qid, "query": topics[query.qid], "documents": [{"id": e.docid} for e in top]}
            handle.write(orjson.dumps(line) + b"\n")
            queries += 1
            documents += len(top)
            seen.add(query.qid)
    return queries, documents, seen


def build_dataset(
    run: Path, topics: Mapping[str, str], corpus: Container[str], depth: int, out: Path
) -> BuiltDataset:
    """Write the dataset lines of ``run`` cut at ``depth`` to ``out``; raises
    :class:`FirstStageError` (the run file's own errors included, as :class:`RunFileError` is
    one) naming the file and line."""
    if not 1 <= depth <= MAX_DOCUMENTS:
        raise FirstStageError(f"--depth {depth}: must be 1 to {MAX_DOCUMENTS} (documents per line)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        queries, documents, seen = _lines(run, topics, corpus, depth, partial)
        if queries == 0:
            raise FirstStageError(f"{run}: no run lines")
        if _same_content(partial, out):
            partial.unlink()
        else:
            partial.replace(out)
    except RunFileError as exc:
        raise FirstStageError(str(exc)) from exc
    finally:
        partial.unlink(missing_ok=True)
    return BuiltDataset(out, queries, documents, sum(1 for qid in topics if qid not in seen))


def first_stage_dataset(
    run: Path, topics: Path | None, corpus: Path | None, depth: int, topic_field: str | None
) -> tuple[BuiltDataset, Corpus]:
    """The flags of ``enqueue.py --run``: topics and corpus read, the dataset file built."""
    if topics is None or corpus is None:
        raise FirstStageError("--run needs --topics and --corpus")
    try:
        loaded = load_corpus(corpus)
        built = build_dataset(run, load_topics(topics, topic_field), loaded, depth, dataset_path(run, depth))
    except (CorpusError, TopicsError) as exc:
        raise FirstStageError(str(exc)) from exc
    return built, loaded
