"""``batch.py eval BATCH... --qrels F``: one table, the first stage and each batch scored with ir_measures.

Every run is scored over the queries of the qrels.  A judged query a run lacks (a line that
failed or never finished, or a query the first stage did not retrieve for) counts 0 in the mean
(``trec_eval -c``) and is listed, so a partial batch never looks better than it is.  The
evaluation of each batch is stored in Redis next to the batch (``keys.batch_evaluation``, with
the batch's expiry) for ``batch.py report``: :func:`stored_evaluation`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from redis.asyncio import Redis

from jobs import keys
from jobs.formats import batch_ranking
from jobs.rows import in_file
from jobs.runfile import RunFileError, read_run

__all__ = [
    "DEFAULT_METRICS",
    "STORE_LUA",
    "EvaluationError",
    "Qrels",
    "Run",
    "RunScores",
    "evaluate",
    "evaluate_batches",
    "ir_measures_module",
    "read_qrels",
    "report_rows",
    "run_from_file",
    "store_evaluation",
    "stored_evaluation",
    "table",
    "write_per_query",
]

DEFAULT_METRICS = ("nDCG@10", "RR@10", "R@100")

Run = dict[str, dict[str, float]]
"""Query id -> document id -> score."""
Qrels = dict[str, dict[str, int]]


STORE_LUA = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[2], ARGV[1])
end
"""
"""The evaluation expires when the batch hash does (read and set in one step)."""


class EvaluationError(ValueError):
    """Qrels, metrics or a run that cannot be evaluated (the message says which and where)."""


def ir_measures_module() -> ModuleType:
    try:
        return importlib.import_module("ir_measures")
    except ImportError:
        raise EvaluationError(
            "batch.py eval needs ir_measures: pip install 'rerank-runner[eval]' (or pip install ir-measures)"
        ) from None


@dataclass
class RunScores:
    name: str
    model: str | None
    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    """Metric -> query id -> value, over every judged query (0 where the run lacks it)."""
    missing: list[str] = field(default_factory=list)
    """Judged queries the run has no ranking for."""
    unranked: int = 0
    """Lines of the batch without a ranking (failed or unfinished), judged or not."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "means": self.means,
            "queries": len(next(iter(self.per_query.values()), {})),
            "missing": self.missing,
            "unranked": self.unranked,
        }


def _judgement(number: int, text: str) -> tuple[str, str, int] | None:
    columns = text.split()
    if not columns or (number == 1 and columns[0].lower() in {"query-id", "qid", "query_id"}):
        return None
    if len(columns) not in (3, 4) or not columns[-1].lstrip("-").isdigit():
        raise EvaluationError(f"line {number}: needs qid iter docid relevance (an integer)")
    return columns[0], columns[-2], int(columns[-1])


def read_qrels(path: Path) -> Qrels:
    """TREC qrels (``qid iter docid rel``) or BEIR's (``query-id<TAB>corpus-id<TAB>score``, a
    header row); raises :class:`EvaluationError` naming the file and line."""
    qrels: Qrels = {}
    with in_file(path, EvaluationError), path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if (judged := _judgement(number, text)) is not None:
                qrels.setdefault(judged[0], {})[judged[1]] = judged[2]
    if not qrels:
        raise EvaluationError(f"{path}: no judgements")
    return qrels


def run_from_file(path: Path) -> Run:
    """A first-stage run (any format :mod:`jobs.runfile` reads), whole."""
    try:
        return {q.qid: {e.docid: e.score for e in q.entries} for q in read_run(path)}
    except RunFileError as exc:
        raise EvaluationError(f"--baseline {exc}") from exc


def _measures(names: Sequence[str]) -> list[Any]:
    ir_measures = ir_measures_module()
    parsed = []
    for name in names:
        try:
            parsed.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError, TypeError) as exc:
            raise EvaluationError(f"--metrics {name!r}: not an ir_measures measure ({exc})") from None
    return parsed


def evaluate(
    run: Run, qrels: Qrels, metrics: Sequence[str], name: str, model: str | None = None
) -> RunScores:
    ir_measures = ir_measures_module()
    measures = _measures(metrics)
    judged = sorted(qrels)
    per_query: dict[str, dict[str, float]] = {str(m): dict.fromkeys(judged, 0.0) for m in measures}
    for found in ir_measures.iter_calc(measures, qrels, run):
        per_query[str(found.measure)][found.query_id] = float(found.value)
    means = {metric: sum(values.values()) / len(values) for metric, values in per_query.items()}
    return RunScores(name, model, means, per_query, [q for q in judged if q not in run])


def table(rows: Iterable[RunScores], metrics: Sequence[str]) -> str:
    """The evaluation table: a row per run, a column per metric, judged queries missing."""
    rows = list(rows)
    labels = [f"{r.name} ({r.model})" if r.model else r.name for r in rows]
    width = max(len("run"), *(len(label) for label in labels))
    header = f"{'run':<{width}}  {'missing':>7}  " + "  ".join(f"{m:>8}" for m in metrics)
    lines = [header, "-" * len(header)]
    for label, row in zip(labels, rows, strict=True):
        values = "  ".join(f"{row.means.get(m, float('nan')):>8.4f}" for m in metrics)
        lines.append(f"{label:<{width}}  {len(row.missing):>7}  {values}")
    return "\n".join(lines)


async def store_evaluation(
    redis: Redis, batch: str, row: RunScores, baseline: RunScores | None, qrels: Path, metrics: Sequence[str]
) -> None:
    """Keep the batch's evaluation (its row and the baseline's means) with the batch's expiry."""
    entry: dict[str, Any] = {
        "batch": batch,
        "qrels": str(qrels),
        "metrics": list(metrics),
        "evaluated_at": round(time.time(), 3),
        "run": row.to_json(),
        "baseline": baseline.to_json() if baseline else None,
    }
    entry["batch_run"] = (await redis.hget(keys.batch(batch), "run") or b"").decode()  # type: ignore[misc]
    store = redis.register_script(STORE_LUA)
    await store(keys=[keys.batch(batch), keys.batch_evaluation(batch)], args=[orjson.dumps(entry)])


async def stored_evaluation(redis: Redis, batch: str) -> Mapping[str, Any] | None:
    """The last ``batch.py eval`` of the batch: ``{batch, qrels, metrics, evaluated_at, run,
    baseline, batch_run}`` (``run`` and ``baseline``: ``{name, model, means, queries, missing,
    unranked}``), or None, also when the batch now holds another run than the one evaluated."""
    raw = await redis.get(keys.batch_evaluation(batch))
    if raw is None:
        return None
    found: Mapping[str, Any] = orjson.loads(raw)
    current = await redis.hget(keys.batch(batch), "run")  # type: ignore[misc]
    return found if current is not None and current.decode() == found.get("batch_run") else None


async def evaluate_batches(
    redis: Redis, batches: Sequence[str], qrels_path: Path, metrics: Sequence[str], baseline: Path | None
) -> list[RunScores]:
    """The baseline's row (when given) then each batch's; each batch's evaluation is stored."""
    qrels = read_qrels(qrels_path)
    _measures(metrics)
    first = evaluate(run_from_file(baseline), qrels, metrics, baseline.name) if baseline else None
    rows = [first] if first else []
    for batch in batches:
        run, models, counts = await batch_ranking(redis, batch)
        row = evaluate(run, qrels, metrics, batch, ", ".join(models) or None)
        row.unranked = counts.failed + counts.unfinished
        await store_evaluation(redis, batch, row, first, qrels_path, metrics)
        rows.append(row)
    return rows


def write_per_query(rows: Iterable[RunScores], path: Path) -> None:
    """``run<TAB>metric<TAB>qid<TAB>value`` for every run, metric and judged query (for paired
    significance tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("run\tmetric\tqid\tvalue\n")
        for row in rows:
            for metric, values in row.per_query.items():
                for qid, value in values.items():
                    handle.write(f"{row.name}\t{metric}\t{qid}\t{value!r}\n")


def report_rows(stored: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A stored evaluation as ``batch.py report``'s table rows: the baseline's, then the batch's
    (``run``, each metric, ``missing`` judged queries)."""
    if stored is None:
        return []
    found = [stored["baseline"], stored["run"]] if stored.get("baseline") else [stored["run"]]
    return [{"run": row["name"], **row["means"], "missing": len(row["missing"])} for row in found]
