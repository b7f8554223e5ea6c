"""``batch.py results --format jsonl|trec|csv|parquet``: a batch's rankings in the formats IR tools read.

- ``jsonl``: the records themselves (README "Results").
- ``trec``: ``qid Q0 docid rank score tag``, the tag the record's model unless ``--tag``.
- ``csv``: ``qid,docid,rank,score,model`` with a header row.
- ``parquet``: the same columns (pyarrow, the ``parquet`` extra).

Documents are named by their own ids (``document_id``): a ranking of documents without ids
cannot be written as a run and is an error naming the line.  Lines that failed or never
finished have no ranking: they go to the errors file as always and are counted, so a partial
batch is never mistaken for a whole one.
"""

from __future__ import annotations

import csv
import importlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import orjson
from redis.asyncio import Redis

from jobs.batches import ExportCounts, export

__all__ = [
    "COLUMNS",
    "FORMATS",
    "PARQUET_CHUNK",
    "FormatError",
    "Row",
    "batch_ranking",
    "export_as",
    "pyarrow_modules",
    "read_records",
    "rows_of",
    "write_trec",
]

FORMATS = ("jsonl", "trec", "csv", "parquet")
COLUMNS = ("qid", "docid", "rank", "score", "model")
PARQUET_CHUNK = 50_000

Row = tuple[str, str, int, float, str]


class FormatError(ValueError):
    """A batch that cannot be written in the asked format (the message says why and where)."""


def pyarrow_modules() -> tuple[ModuleType, ModuleType]:
    """(pyarrow, pyarrow.parquet), or a :class:`FormatError` saying how to install them."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise FormatError(
            "--format parquet needs pyarrow: pip install 'rerank-runner[parquet]' (or pip install pyarrow)"
        ) from None


def read_records(handle: IO[bytes]) -> Iterator[dict[str, Any]]:
    handle.seek(0)
    for raw in handle:
        if raw.strip():
            yield orjson.loads(raw)


def rows_of(record: dict[str, Any]) -> Iterator[Row]:
    """(qid, docid, rank, score, model) of one success record, best first."""
    for rank, result in enumerate(record["results"], start=1):
        docid = result.get("document_id")
        if docid is None:
            raise FormatError(
                f"line {record['line']} (id {record['id']!r}): document {result['index']} has no id; "
                'a run names documents by id: give them as objects with an "id" (or use --run/--corpus)'
            )
        yield str(record["id"]), str(docid), rank, float(result["relevance_score"]), str(record.get("model"))


def _trec_field(value: str, what: str, record: dict[str, Any]) -> str:
    if not value or len(value.split()) != 1 or value.strip() != value:
        raise FormatError(
            f"line {record['line']} (id {record['id']!r}): {what} {value!r} is empty or holds whitespace, "
            "which a TREC run cannot carry (use --format csv, jsonl or parquet)"
        )
    return value


def write_trec(records: IO[bytes], out: Path, tag: str | None) -> None:
    with out.open("w", encoding="utf-8") as handle:
        for record in read_records(records):
            for qid, docid, rank, score, model in rows_of(record):
                fields = (_trec_field(v, w, record) for v, w in ((qid, "query id"), (docid, "document id")))
                name = tag or "_".join(model.split())
                handle.write(f"{next(fields)} Q0 {next(fields)} {rank} {score!r} {name}\n")


def _write_csv(records: IO[bytes], out: Path) -> None:
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for record in read_records(records):
            writer.writerows(rows_of(record))


def _write_parquet(records: IO[bytes], out: Path) -> None:
    pa, pq = pyarrow_modules()
    schema = pa.schema(
        [
            ("qid", pa.string()),
            ("docid", pa.string()),
            ("rank", pa.int32()),
            ("score", pa.float64()),
            ("model", pa.string()),
        ]
    )
    with pq.ParquetWriter(str(out), schema) as writer:
        chunk: list[Row] = []
        for record in read_records(records):
            chunk.extend(rows_of(record))
            if len(chunk) >= PARQUET_CHUNK:
                writer.write_table(_table(pa, schema, chunk))
                chunk = []
        writer.write_table(_table(pa, schema, chunk))


def _table(pa: ModuleType, schema: Any, rows: list[Row]) -> Any:
    return pa.Table.from_pylist([dict(zip(COLUMNS, row, strict=True)) for row in rows], schema)


async def export_as(
    redis: Redis, batch: str, fmt: str, out: Path, errors: Path, tag: str | None = None
) -> ExportCounts:
    """Export the batch: rankings to ``out`` in ``fmt``, failed and unfinished lines to ``errors``
    (JSONL, as :func:`jobs.batches.export`).  The output is written whole or not at all."""
    if fmt == "parquet":
        pyarrow_modules()
    if tag is not None and (not tag or len(tag.split()) != 1 or tag.strip() != tag):
        raise FormatError(f"--tag {tag!r}: a TREC run tag is one word without whitespace")
    out.parent.mkdir(parents=True, exist_ok=True)
    errors.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with tempfile.TemporaryFile() as records, errors.open("wb") as failed:
        counts = await export(redis, batch, records, failed)
        try:
            if fmt == "jsonl":
                records.seek(0)
                with partial.open("wb") as handle:
                    shutil.copyfileobj(records, handle)
            elif fmt == "trec":
                write_trec(records, partial, tag)
            elif fmt == "csv":
                _write_csv(records, partial)
            else:
                _write_parquet(records, partial)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    return counts


async def batch_ranking(
    redis: Redis, batch: str
) -> tuple[dict[str, dict[str, float]], list[str], ExportCounts]:
    """The batch as a run (query id -> document id -> score), its models, and how many lines
    succeeded, failed or are unfinished (those have no ranking)."""
    run: dict[str, dict[str, float]] = {}
    models: set[str] = set()
    with tempfile.TemporaryFile() as records, tempfile.TemporaryFile() as errors:
        counts = await export(redis, batch, records, errors)
        for record in read_records(records):
            ranking = run.setdefault(str(record["id"]), {})
            for _, docid, _, score, model in rows_of(record):
                ranking[docid] = score
                models.add(model)
    return run, sorted(models), counts
