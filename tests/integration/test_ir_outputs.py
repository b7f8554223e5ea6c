"""``batch.py results --format trec|csv|parquet`` and ``batch.py eval`` on a batch with a failed line:
the failed query is reported and counted, never silently dropped; the evaluation is kept in Redis
for the batch."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from jobs.batches import drop
from jobs.connection import open_pool
from jobs.evaluation import stored_evaluation
from tests.e2e import run_batch
from tests.support import run_script

pytestmark = pytest.mark.integration

BATCH = "irout"


def docs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"id": docid, "text": text} for docid, text in pairs]


LINES = [
    {"id": "q1", "query": "solar panel", "documents": docs(("d2", "coffee"), ("d1", "solar panel"))},
    {"id": "q2", "query": "espresso", "documents": docs(("d3", "espresso shot"), ("d4", "tea"))},
    # no key for this provider: a configuration error, a failed line without a ranking
    {"id": "q3", "query": "glacier", "documents": docs(("d5", "glacier")), "model": "cohere/rerank-v3.5"},
]
QRELS = "q1 0 d1 1\nq2 0 d3 1\nq3 0 d5 1\n"


def results(redis_url: str, tmp_path: Path, fmt: str, *extra: str) -> tuple[Path, str]:
    out = tmp_path / f"out.{fmt}"
    done = run_script(
        "batch.py", "results", BATCH, "--format", fmt, "--output", str(out), "--errors",
        str(tmp_path / "errors.jsonl"), *extra, env={"REDIS_URL": redis_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, done.stderr


async def evaluation_then_dropped(redis_url: str) -> tuple[Any, Any, int, int]:
    redis = await open_pool(redis_url)
    try:
        stored = await stored_evaluation(redis, BATCH)
        ttls = (
            int(await redis.pttl(f"rr:batch:{BATCH}")),
            int(await redis.pttl(f"rr:batch:{BATCH}:evaluation")),
        )
        await drop(redis, BATCH)
        return stored, await stored_evaluation(redis, BATCH), *ttls
    finally:
        await redis.aclose()


@pytest.mark.timeout(120)  # a batch, a burst worker and five batch.py processes: 20-30 s on 2 busy cores
def test_formats_name_documents_by_id_and_report_failed_queries_and_eval_is_stored(
    redis_url: str, tmp_path: Path
) -> None:
    _, errors = run_batch(redis_url, LINES, tmp_path, {}, batch=BATCH)
    assert [e["id"] for e in errors] == ["q3"]
    trec, warning = results(redis_url, tmp_path, "trec", "--tag", "mine")
    expected = [("q1", "d1", 1), ("q1", "d2", 2), ("q2", "d3", 1), ("q2", "d4", 2)]
    rows = [line.split() for line in trec.read_text().splitlines()]
    assert [(r[0], r[2], int(r[3])) for r in rows] == expected
    assert {r[1] for r in rows} == {"Q0"} and {r[5] for r in rows} == {"mine"}
    assert "warning: 1 lines have no ranking" in warning and "1 failed, 0 unfinished" in warning
    with results(redis_url, tmp_path, "csv")[0].open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["qid"], r["docid"], int(r["rank"])) for r in table] == expected
    assert [float(r["score"]) for r in table] == [float(r[4]) for r in rows]
    assert {r["model"] for r in table} == {"local/bm25"}
    parquet = pq.read_table(results(redis_url, tmp_path, "parquet")[0]).to_pylist()
    assert [(r["qid"], r["docid"], r["rank"], r["score"]) for r in parquet] == [
        (r["qid"], r["docid"], int(r["rank"]), float(r["score"])) for r in table
    ]
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(QRELS)
    evaluated = run_script(
        "batch.py", "eval", BATCH, "--qrels", str(qrels), "--metrics", "RR@10", env={"REDIS_URL": redis_url}
    )
    assert evaluated.returncode == 0, evaluated.stderr
    # q3 failed: it counts 0, so RR@10 is 2/3, not the 1.0 of the two queries that ran
    assert f"{BATCH} (local/bm25)        1    0.6667" in evaluated.stdout
    assert f"{BATCH}: 1 judged queries missing: q3" in evaluated.stderr
    assert f"{BATCH}: 1 lines failed or unfinished" in evaluated.stderr
    report = run_script(
        "batch.py", "report", BATCH, "--html", str(tmp_path / "report.html"), env={"REDIS_URL": redis_url}
    )
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report.html").read_text()
    # the report shows the stored evaluation without --eval
    assert "<th>run</th><th>RR@10</th><th>missing</th>" in page and f"<td>{BATCH}</td>" in page
    stored, after_drop, batch_ttl, evaluation_ttl = asyncio.run(evaluation_then_dropped(redis_url))
    assert stored["run"]["means"] == {"RR@10": pytest.approx(2 / 3)}
    assert (stored["run"]["missing"], stored["run"]["unranked"], stored["baseline"]) == (["q3"], 1, None)
    assert batch_ttl > 0 and 0 < evaluation_ttl <= batch_ttl
    assert after_drop is None
