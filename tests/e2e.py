"""Run a small batch end to end: ``enqueue.py`` then a real ``worker.py --burst`` process."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from jobs.identity import default_batch_name, run_identity
from jobs.settings import DEFAULT_MODEL
from jobs.validation import ModelCheck, validate_file
from providers.registry import credentials_from
from tests.support import ROOT, env_with, read_jsonl, run_script, write_dataset


def run_batch(
    redis_url: str,
    lines: Sequence[Mapping[str, Any]],
    tmp_path: Path,
    env: Mapping[str, str],
    *,
    batch: str = "e2e",
    extra_args: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Enqueue ``lines``, drain the queue with one burst worker, export; (results, errors)."""
    dataset = write_dataset(tmp_path / f"{batch}.jsonl", lines)
    full_env = {"REDIS_URL": redis_url, **env}
    enqueued = run_script(
        "enqueue.py", str(dataset), "--batch", batch, "--no-progress", *extra_args, env=full_env
    )
    assert enqueued.returncode == 0, enqueued.stderr
    worker = run_script("worker.py", "--burst", *_config_args(extra_args), env=full_env)
    assert worker.returncode == 0, worker.stderr
    results, errors = tmp_path / f"{batch}.out.jsonl", tmp_path / f"{batch}.err.jsonl"
    exported = run_script(
        "batch.py", "results", batch, "--output", str(results), "--errors", str(errors), env=full_env
    )
    assert exported.returncode == 0, exported.stderr
    return read_jsonl(results), read_jsonl(errors)


def _config_args(args: Sequence[str]) -> list[str]:
    """Pass ``--config PATH`` on to the worker when enqueue got one."""
    items = list(args)
    if "--config" in items:
        at = items.index("--config")
        return items[at : at + 2]
    return []


WORKER_ENV = {
    "RR_JOB_TIMEOUT": "30",
    "RR_HTTP_TIMEOUT": "5",
    "RR_RETRY_MAX_SECONDS": "10",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
"""Short time limits for workers that talk to a local wire server."""


class CliRun:
    """The commands as a user runs them: ``enqueue.py`` (its default batch name unless the
    arguments give one), a ``worker.py --burst`` process, ``batch.py results``."""

    def __init__(self, env: Mapping[str, str], tmp_path: Path) -> None:
        self.env = dict(env)
        self.tmp_path = tmp_path

    def enqueue(self, dataset: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run_script("enqueue.py", str(dataset), "--no-progress", *args, env=self.env, timeout=120)

    def run(self, dataset: Path, *args: str) -> tuple[str, str, list[dict[str, Any]]]:
        """Enqueue, drain with one burst worker, export: (batch, enqueue stdout, results)."""
        enqueued = self.enqueue(dataset, *args)
        assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
        found = re.search(r"^batch (\S+)$", enqueued.stdout, re.MULTILINE)
        assert found, enqueued.stdout
        batch = found.group(1)
        worker = subprocess.run(
            [sys.executable, str(ROOT / "worker.py"), "--burst"],
            env=env_with(self.env), cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr
        out, err = self.tmp_path / f"{batch}.out.jsonl", self.tmp_path / f"{batch}.err.jsonl"
        exported = run_script(
            "batch.py", "results", batch, "--output", str(out), "--errors", str(err), env=self.env
        )
        assert exported.returncode == 0, exported.stderr
        assert read_jsonl(err) == [], read_jsonl(err)
        return batch, enqueued.stdout, read_jsonl(out)

    def status(self, batch: str) -> dict[str, Any]:
        status = self.status_or_none(batch)
        assert status is not None, f"no batch {batch}"
        return status

    def status_or_none(self, batch: str) -> dict[str, Any] | None:
        done = run_script("batch.py", "status", batch, "--json", env=self.env, timeout=60)
        if done.returncode != 0:
            return None
        status: dict[str, Any] = orjson.loads(done.stdout)
        return status


def default_batch(dataset: Path, env: Mapping[str, str], model: str = DEFAULT_MODEL) -> str:
    """The batch name ``enqueue.py DATASET`` picks when run with ``env`` (a raw model's base URL
    from the environment is part of the run identity)."""
    report = validate_file(dataset, ModelCheck(), lambda error: None)
    return default_batch_name(
        dataset, run_identity(dataset, report, model, None, credentials_from(env_with(env)))
    )
