"""A bake-off: one enqueue command, the same lines through two key-free models as sibling
batches, one status and one export over both (local mode, then against a shared Redis)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis

from jobs import keys
from tests.collection import build, first_stage
from tests.support import read_jsonl, run_script, write_dataset

pytestmark = pytest.mark.integration

MODELS = ("local/bm25", "local/ql")


def lines_and_corpus(tmp_path: Path) -> tuple[Path, Path]:
    collection = build(per_topic=4, background_docs=30)
    dataset = write_dataset(tmp_path / "run.jsonl", collection.dataset(first_stage(collection, 8)))
    return dataset, collection.write_corpus(tmp_path / "corpus.jsonl")


def batches_of(stdout: str) -> list[str]:
    return re.findall(r"^batch (\S+): running locally", stdout, re.MULTILINE)


def test_two_models_as_sibling_batches_with_one_status_and_one_export(tmp_path: Path) -> None:
    dataset, corpus = lines_and_corpus(tmp_path)
    state = ["--state-dir", str(tmp_path / "state")]
    models = [arg for model in MODELS for arg in ("--model", model)]
    done = run_script(
        "enqueue.py", str(dataset), *models, "--corpus", str(corpus), "--group", "trial", "--no-progress",
        *state, env={}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    bm25, ql = batches_of(done.stdout)
    assert bm25.startswith("run-local-bm25-") and ql.startswith("run-local-ql-")
    assert "bake-off trial: 2 batches" in done.stdout
    by_model = {}
    for batch, model in ((bm25, "local/bm25"), (ql, "local/ql")):
        records = read_jsonl(tmp_path / "results" / f"{batch}.jsonl")
        assert len(records) == 4 and {r["model"] for r in records} == {model}
        by_model[model] = {r["id"]: r for r in records}
    assert by_model["local/bm25"].keys() == by_model["local/ql"].keys()
    assert by_model["local/bm25"]["q0"]["run"] != by_model["local/ql"]["q0"]["run"]  # own run identities
    assert all(d["relevance_score"] <= 0 for d in by_model["local/ql"]["q0"]["results"])

    status = run_script("batch.py", *state, "status", "trial", "--json", env={}, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    group = json.loads(status.stdout)
    assert (group["total"], group["succeeded"], group["pending"]) == (8, 8, 0)
    assert [(b["batch"], b["state"]) for b in group["batches"]] == [(bm25, "finished"), (ql, "finished")]

    (tmp_path / "results" / f"{ql}.jsonl").unlink()
    exported = run_script("batch.py", *state, "results", "trial", env={}, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert [r["id"] for r in read_jsonl(tmp_path / "results" / f"{ql}.jsonl")] == list(by_model["local/ql"])
    refused = run_script("batch.py", *state, "results", "trial", "--output", "x.jsonl", env={}, cwd=tmp_path)
    assert refused.returncode == 2 and "bake-off of 2 batches" in refused.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch", "mine"], "--batch: a bake-off (several --model) makes one batch per model"),
        (["--output", "o.jsonl"], "--output: a bake-off"),
        (["--model", "local/bm25"], "--model local/bm25 is given twice"),
        (["--group", "no/slash"], "group name 'no/slash'"),
    ],
)
def test_bakeoff_arguments_that_cannot_hold_are_refused(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    dataset, _ = lines_and_corpus(tmp_path)
    args = ["--model", "local/bm25", "--model", "local/ql", *extra, "--state-dir", str(tmp_path / "s")]
    refused = run_script("enqueue.py", str(dataset), *args, env={}, cwd=tmp_path)
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert not (tmp_path / "s").exists()  # refused before Redis was started


def test_against_a_shared_redis_workers_serve_every_sibling_and_status_covers_them(
    redis_url: str, tmp_path: Path
) -> None:
    dataset, corpus = lines_and_corpus(tmp_path)
    env = {"REDIS_URL": redis_url}
    models = [arg for model in MODELS for arg in ("--model", model)]
    enqueued = run_script("enqueue.py", str(dataset), *models, "--corpus", str(corpus), env=env, cwd=tmp_path)
    assert enqueued.returncode == 0, enqueued.stderr
    group = re.search(r"^bake-off (\S+): 2 batches$", enqueued.stdout, re.MULTILINE)
    assert group and group.group(1).startswith("run-bakeoff-"), enqueued.stdout
    assert f"status {group.group(1)} --watch" in enqueued.stdout
    assert run_script("worker.py", "--burst", env=env).returncode == 0
    status = run_script("batch.py", "status", group.group(1), env=env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(": finished") == 2
    assert f"{group.group(1)}: 2 batches  total 8  succeeded 8  failed 0  pending 0" in status.stdout


def test_cancel_and_retry_failed_take_a_group(redis_url: str, tmp_path: Path) -> None:
    """``cancel GROUP`` empties each sibling's queue; then the corpus statistics vanish before
    any worker runs, so every line of both siblings fails (never ranked with other statistics);
    the same enqueue stores them again and one ``retry-failed GROUP`` recovers both batches."""
    dataset, corpus = lines_and_corpus(tmp_path)
    env = {"REDIS_URL": redis_url}
    models = [arg for model in MODELS for arg in ("--model", model)]
    args = [str(dataset), *models, "--corpus", str(corpus), "--group", "g"]
    assert run_script("enqueue.py", *args, env=env, cwd=tmp_path).returncode == 0
    cancelled = run_script("batch.py", "cancel", "g", env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.count(": 4 queued lines removed") == 2, cancelled.stdout
    retried = run_script("batch.py", "retry-failed", "g", env=env)  # nothing has failed
    assert retried.stdout.count(": 0 failed lines queued again") == 2, retried.stdout

    assert run_script("enqueue.py", *args, env=env, cwd=tmp_path).returncode == 0  # resumes both
    client = redis.Redis.from_url(redis_url)
    try:
        stats_keys = list(client.scan_iter(keys.corpus_stats("*")))
        assert len(stats_keys) == 1 and client.delete(*stats_keys) == 1
    finally:
        client.close()
    assert run_script("worker.py", "--burst", env=env).returncode == 0
    failed = run_script("batch.py", "status", "g", env=env)
    assert "total 8  succeeded 0  failed 8  pending 0" in failed.stdout, failed.stdout

    assert run_script("enqueue.py", *args, env=env, cwd=tmp_path).returncode == 0  # statistics again
    retried = run_script("batch.py", "retry-failed", "g", "--code", "configuration", env=env)
    assert retried.returncode == 0 and retried.stdout.count(": 4 failed lines queued again") == 2
    assert run_script("worker.py", "--burst", env=env).returncode == 0
    recovered = run_script("batch.py", "status", "g", env=env)
    assert "total 8  succeeded 8  failed 0  pending 0" in recovered.stdout, recovered.stdout
